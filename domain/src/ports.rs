//! The ports a project's services listen on, and the range they come from.
//!
//! Every project owns one block of four consecutive ports. The range is cut
//! into such blocks; which block is free is decided by the infrastructure,
//! and the reservation is made atomically with the `ProjectCreated` event.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four host ports a project's services are published on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// The backend (API) server.
    pub backend: u16,
    /// The frontend dev server.
    pub frontend: u16,
    /// PostgreSQL.
    pub postgres: u16,
    /// Redis.
    pub redis: u16,
}

impl Ports {
    /// All four ports, in the order backend, frontend, postgres, redis.
    pub fn all(&self) -> [u16; 4] {
        [self.backend, self.frontend, self.postgres, self.redis]
    }
}

/// An inclusive range of host ports, e.g. `20000-29999`, cut into blocks of
/// four for projects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// How many ports one project needs.
    pub const BLOCK_SIZE: u16 = 4;
    /// The lowest port a range may start at; lower ports need root.
    pub const MIN_START: u16 = 1024;

    /// A range from `start` to `end`, both included.
    ///
    /// # Errors
    ///
    /// [`PortRangeError::Privileged`] when `start` is below 1024,
    /// [`PortRangeError::Reversed`] when `start > end`, and
    /// [`PortRangeError::TooSmall`] when the range cannot hold one block of
    /// four ports.
    pub fn new(start: u16, end: u16) -> Result<Self, PortRangeError> {
        if start < Self::MIN_START {
            return Err(PortRangeError::Privileged { start });
        }
        if start > end {
            return Err(PortRangeError::Reversed { start, end });
        }
        if end - start + 1 < Self::BLOCK_SIZE {
            return Err(PortRangeError::TooSmall { start, end });
        }
        Ok(Self { start, end })
    }

    /// The first port of the range.
    pub fn start(&self) -> u16 {
        self.start
    }

    /// The last port of the range (included).
    pub fn end(&self) -> u16 {
        self.end
    }

    /// How many whole blocks of four ports fit; leftover ports at the end
    /// are never handed out.
    pub fn blocks(&self) -> u32 {
        (u32::from(self.end) - u32::from(self.start) + 1) / u32::from(Self::BLOCK_SIZE)
    }

    /// Block `k` (counting from 0): ports `start + 4k` to `start + 4k + 3`
    /// as backend, frontend, postgres and redis, or `None` past the last
    /// whole block.
    pub fn block(&self, k: u32) -> Option<Ports> {
        if k >= self.blocks() {
            return None;
        }
        let base = u32::from(self.start) + k * u32::from(Self::BLOCK_SIZE);
        let port = |offset: u32| u16::try_from(base + offset).ok();
        Some(Ports {
            backend: port(0)?,
            frontend: port(1)?,
            postgres: port(2)?,
            redis: port(3)?,
        })
    }
}

impl Default for PortRange {
    /// `20000-29999`: 2500 projects, clear of the usual ephemeral range.
    fn default() -> Self {
        Self {
            start: 20000,
            end: 29999,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    /// Parses `START-END`, e.g. `20000-29999`; spaces around either number
    /// are allowed.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let malformed = || PortRangeError::Malformed {
            input: input.chars().take(64).collect(),
        };
        let (start, end) = input.split_once('-').ok_or_else(malformed)?;
        let start = start.trim().parse().map_err(|_| malformed())?;
        let end = end.trim().parse().map_err(|_| malformed())?;
        Self::new(start, end)
    }
}

/// Why a port range was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// Not of the form `START-END` with two port numbers.
    #[error("'{input}' is not a port range; write it as START-END with ports up to 65535, e.g. 20000-29999")]
    Malformed {
        /// The rejected text (at most its first 64 characters).
        input: String,
    },
    /// Starts below 1024.
    #[error("the port range starts at {start}, where ports need root; start it at 1024 or above")]
    Privileged {
        /// The rejected start.
        start: u16,
    },
    /// The start is after the end.
    #[error("the port range {start}-{end} ends before it starts; put the lower port first")]
    Reversed {
        /// The rejected start.
        start: u16,
        /// The rejected end.
        end: u16,
    },
    /// Fewer than four ports.
    #[error("the port range {start}-{end} holds fewer than four ports; a project needs a block of four, so widen it")]
    TooSmall {
        /// The rejected start.
        start: u16,
        /// The rejected end.
        end: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_is_20000_to_29999_with_2500_blocks() {
        let range = PortRange::default();
        assert_eq!((range.start(), range.end()), (20000, 29999));
        assert_eq!(range.to_string(), "20000-29999");
        assert_eq!(range.blocks(), 2500);
        assert_eq!("20000-29999".parse::<PortRange>(), Ok(range));
    }

    #[test]
    fn a_range_parses_from_start_dash_end() {
        let range: PortRange = "30000-30011".parse().unwrap();
        assert_eq!((range.start(), range.end()), (30000, 30011));
        assert_eq!(" 30000 - 30011 ".parse::<PortRange>(), Ok(range));
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for input in [
            "",
            "20000",
            "20000-",
            "-29999",
            "a-b",
            "20000-29999-1",
            "20000:29999",
            "1-70000",
        ] {
            assert!(
                matches!(
                    input.parse::<PortRange>(),
                    Err(PortRangeError::Malformed { .. })
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_range_starting_below_1024_is_rejected() {
        assert_eq!(
            "80-2000".parse::<PortRange>(),
            Err(PortRangeError::Privileged { start: 80 })
        );
        assert!(PortRange::new(1024, 1027).is_ok());
    }

    #[test]
    fn a_reversed_range_is_rejected() {
        assert_eq!(
            PortRange::new(30000, 20000),
            Err(PortRangeError::Reversed {
                start: 30000,
                end: 20000
            })
        );
    }

    #[test]
    fn a_range_of_fewer_than_four_ports_is_rejected() {
        assert_eq!(
            PortRange::new(20000, 20002),
            Err(PortRangeError::TooSmall {
                start: 20000,
                end: 20002
            })
        );
        assert_eq!(PortRange::new(20000, 20003).unwrap().blocks(), 1);
    }

    #[test]
    fn leftover_ports_do_not_make_a_block() {
        assert_eq!(PortRange::new(20000, 20006).unwrap().blocks(), 1);
        assert_eq!(PortRange::new(20000, 20007).unwrap().blocks(), 2);
    }

    #[test]
    fn block_k_is_four_consecutive_ports_in_service_order() {
        let range = PortRange::default();
        let first = range.block(0).unwrap();
        assert_eq!(
            first,
            Ports {
                backend: 20000,
                frontend: 20001,
                postgres: 20002,
                redis: 20003
            }
        );
        assert_eq!(first.all(), [20000, 20001, 20002, 20003]);
        assert_eq!(range.block(1).unwrap().backend, 20004);
        assert_eq!(
            range.block(2499).unwrap().all(),
            [29996, 29997, 29998, 29999]
        );
        assert_eq!(range.block(2500), None);
        assert_eq!(range.block(u32::MAX), None);
    }

    #[test]
    fn the_last_block_of_a_range_ending_at_65535_fits() {
        let range = PortRange::new(65532, 65535).unwrap();
        assert_eq!(range.blocks(), 1);
        assert_eq!(range.block(0).unwrap().redis, 65535);
        assert_eq!(PortRange::new(1024, 65535).unwrap().blocks(), 16128);
    }

    #[test]
    fn ports_serialize_as_an_object_of_four_numbers() {
        let ports = PortRange::default().block(0).unwrap();
        let json = serde_json::to_value(ports).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"backend": 20000, "frontend": 20001, "postgres": 20002, "redis": 20003})
        );
    }
}
