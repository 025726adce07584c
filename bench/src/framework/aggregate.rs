//! The baseline's domain: a project-create-shaped command on an aggregate
//! of its own, and the view the framework updates after each commit.

use std::sync::atomic::{AtomicU32, Ordering};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope, View};
use serde::{Deserialize, Serialize};

/// Blocks of four ports handed out before the numbers wrap around (the
/// baseline reserves nothing: the block only gives the event its shape).
const PORT_BLOCKS: u32 = 10_000;
/// The first port of the first block.
const FIRST_PORT: u32 = 20_000;

/// The four ports of a project, as the hub's `ProjectCreated` carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// Backend port.
    pub backend: u16,
    /// Frontend port.
    pub frontend: u16,
    /// PostgreSQL port.
    pub postgres: u16,
    /// Redis port.
    pub redis: u16,
}

/// What the command handler may use: a counter of port blocks.
#[derive(Debug, Default)]
pub struct PortBlocks(AtomicU32);

impl PortBlocks {
    fn next(&self) -> Ports {
        let block = self.0.fetch_add(1, Ordering::Relaxed) % PORT_BLOCKS;
        let port = |offset: u32| (FIRST_PORT + 4 * block + offset) as u16;
        Ports {
            backend: port(0),
            frontend: port(1),
            postgres: port(2),
            redis: port(3),
        }
    }
}

/// The one command: create a project with this name.
#[derive(Debug, Deserialize)]
pub struct CreateProject {
    /// Display name.
    pub name: String,
}

/// The one event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ProjectEvent {
    /// A project was created.
    Created {
        /// Display name.
        name: String,
        /// URL-safe form of the name.
        slug: String,
        /// Its block of ports.
        ports: Ports,
    },
}

impl DomainEvent for ProjectEvent {
    fn event_type(&self) -> String {
        "Created".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The project exists already.
    #[error("the project exists already")]
    Exists,
    /// The name is empty.
    #[error("the name is empty")]
    EmptyName,
}

/// A project of the baseline.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BaselineProject {
    created: bool,
}

/// Lower-case letters and digits, every other run of characters one `-`.
fn slug(name: &str) -> String {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect();
    words.join("-")
}

impl Aggregate for BaselineProject {
    const TYPE: &'static str = "BaselineProject";
    type Command = CreateProject;
    type Event = ProjectEvent;
    type Error = ProjectError;
    type Services = PortBlocks;

    async fn handle(
        &mut self,
        command: Self::Command,
        ports: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.created {
            return Err(ProjectError::Exists);
        }
        let slug = slug(&command.name);
        if slug.is_empty() {
            return Err(ProjectError::EmptyName);
        }
        let event = ProjectEvent::Created {
            name: command.name,
            slug,
            ports: ports.next(),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProjectEvent::Created { .. } => self.created = true,
        }
    }
}

/// The view kept in `project_view`, one row per project.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProjectView {
    /// Display name.
    pub name: String,
    /// URL-safe form of the name.
    pub slug: String,
    /// Its block of ports.
    pub ports: Ports,
}

impl View<BaselineProject> for ProjectView {
    fn update(&mut self, event: &EventEnvelope<BaselineProject>) {
        match &event.payload {
            ProjectEvent::Created { name, slug, ports } => {
                self.name.clone_from(name);
                self.slug.clone_from(slug);
                self.ports = *ports;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    #[test]
    fn slugs_keep_letters_and_digits() {
        assert_eq!(slug("bench 1a2b 0 17"), "bench-1a2b-0-17");
        assert_eq!(slug("  Hello, World!  "), "hello-world");
        assert_eq!(slug("!!!"), "");
    }

    #[tokio::test]
    async fn a_project_is_created_once() {
        TestFramework::<BaselineProject>::with(PortBlocks::default())
            .given_no_previous_events()
            .when_async(CreateProject {
                name: "A b".to_owned(),
            })
            .await
            .then_expect_events(vec![ProjectEvent::Created {
                name: "A b".to_owned(),
                slug: "a-b".to_owned(),
                ports: Ports {
                    backend: 20_000,
                    frontend: 20_001,
                    postgres: 20_002,
                    redis: 20_003,
                },
            }]);
        TestFramework::<BaselineProject>::with(PortBlocks::default())
            .given(vec![ProjectEvent::Created {
                name: "A b".to_owned(),
                slug: "a-b".to_owned(),
                ports: Ports::default(),
            }])
            .when_async(CreateProject {
                name: "A b".to_owned(),
            })
            .await
            .then_expect_error_message("the project exists already");
    }
}
