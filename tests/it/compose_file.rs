//! `docker-compose.yml` and `Dockerfile` cannot be run here (no Docker
//! engine), so their shape is checked instead: the services, images, ports,
//! variables, health checks and the image's build stages and user.

use std::path::PathBuf;

use serde_yaml::Value;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

fn compose() -> Value {
    serde_yaml::from_str(&repo_file("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(
        service.is_mapping(),
        "docker-compose.yml has no service '{name}'"
    );
    service
}

/// The service's command or healthcheck as one string, whichever form
/// (list or string) it is written in.
fn joined(value: &Value) -> String {
    match value {
        Value::Sequence(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(text) => text.clone(),
        _ => String::new(),
    }
}

/// `environment` as `NAME -> value`, from the map or the `NAME=value` list form.
fn environment(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                (k.as_str().unwrap_or_default().to_owned(), value)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|item| item.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

fn env_var(service: &Value, name: &str) -> String {
    environment(service)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("the service lacks the environment variable {name}"))
}

fn has_healthcheck(service: &Value) -> bool {
    !joined(&service["healthcheck"]["test"]).is_empty()
}

fn image(service: &Value) -> &str {
    service["image"].as_str().unwrap_or_default()
}

#[test]
fn postgres_is_version_16_with_a_healthcheck_and_a_volume() {
    let compose = compose();
    let postgres = service(&compose, "postgres");
    assert!(
        image(postgres).starts_with("postgres:16"),
        "{:?}",
        postgres["image"]
    );
    assert!(has_healthcheck(postgres), "postgres needs a healthcheck");
    assert!(joined(&postgres["healthcheck"]["test"]).contains("pg_isready"));
    assert!(
        !postgres["volumes"].as_sequence().is_none_or(Vec::is_empty),
        "postgres keeps its data in a volume"
    );
}

#[test]
fn nats_is_version_2_10_with_jetstream_monitoring_and_a_volume() {
    let compose = compose();
    let nats = service(&compose, "nats");
    assert!(image(nats).starts_with("nats:2.10"), "{:?}", nats["image"]);
    let command = joined(&nats["command"]);
    assert!(
        command.split(' ').any(|arg| arg == "-js"),
        "JetStream is on: {command}"
    );
    assert!(command.contains("-m 8222"), "monitoring on 8222: {command}");
    let volumes = nats["volumes"].as_sequence().expect("nats has volumes");
    let data_volume = volumes
        .iter()
        .filter_map(Value::as_str)
        .find_map(|v| v.split_once(':'))
        .expect("a volume for the JetStream store");
    assert!(
        command.contains(&format!("-sd {}", data_volume.1)),
        "the store directory is the volume: {command}"
    );
    assert!(
        compose["volumes"].get(data_volume.0).is_some(),
        "the named volume {} is declared",
        data_volume.0
    );
    assert!(has_healthcheck(nats), "nats needs a healthcheck");
}

#[test]
fn the_hub_is_built_here_and_wired_to_postgres_and_nats() {
    let compose = compose();
    let hub = service(&compose, "hub");
    let build = &hub["build"];
    let (context, dockerfile) = match build {
        Value::String(context) => (context.as_str(), "Dockerfile"),
        _ => (
            build["context"].as_str().unwrap_or_default(),
            build["dockerfile"].as_str().unwrap_or("Dockerfile"),
        ),
    };
    assert_eq!(context, ".", "built from the repository root");
    assert_eq!(dockerfile, "Dockerfile");

    let database_url = env_var(hub, "DATABASE_URL");
    assert!(database_url.starts_with("postgres://"), "{database_url}");
    assert!(
        database_url.contains("@postgres:5432/"),
        "DATABASE_URL points at the postgres service: {database_url}"
    );
    let db_name = database_url.rsplit('/').next().unwrap_or_default();
    assert_eq!(
        env_var(service(&compose, "postgres"), "POSTGRES_DB"),
        db_name,
        "the hub's database is the one postgres creates"
    );
    assert_eq!(env_var(hub, "NATS_URL"), "nats://nats:4222");
    assert!(!env_var(hub, "HUB_ID").is_empty());
    let bind = env_var(hub, "HUB_BIND");
    assert!(
        bind.ends_with(":9001") && !bind.starts_with("127."),
        "reachable from outside the container: {bind}"
    );
    let token = env_var(hub, "HUB_API_TOKEN");
    assert!(
        token.starts_with("${HUB_API_TOKEN"),
        "the token comes from the environment, never the file: {token}"
    );

    let ports: Vec<String> = hub["ports"]
        .as_sequence()
        .expect("the hub publishes a port")
        .iter()
        .map(|p| {
            p.as_str().map_or_else(
                || p["target"].as_u64().unwrap_or_default().to_string(),
                str::to_owned,
            )
        })
        .collect();
    assert!(ports.iter().any(|p| p.ends_with("9001")), "{ports:?}");
    assert!(has_healthcheck(hub), "the hub needs a healthcheck");
    assert!(joined(&hub["healthcheck"]["test"]).contains("/health"));

    let depends_on = &hub["depends_on"];
    for dependency in ["postgres", "nats"] {
        let listed = match depends_on {
            Value::Sequence(items) => items.iter().any(|i| i.as_str() == Some(dependency)),
            Value::Mapping(map) => map.contains_key(dependency),
            _ => false,
        };
        assert!(listed, "the hub depends on {dependency}");
    }
    assert_eq!(
        depends_on["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_a_non_root_user_in_another() {
    let dockerfile = repo_file("Dockerfile");
    let instructions: Vec<(String, String)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(word, rest)| (word.to_ascii_uppercase(), rest.trim().to_owned()))
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (word, _))| word == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(
        stages.len() >= 2,
        "multi-stage: {} FROM lines",
        stages.len()
    );
    let last_stage = &instructions[*stages.last().unwrap()..];
    assert!(
        last_stage
            .iter()
            .any(|(word, rest)| word == "COPY" && rest.starts_with("--from=")),
        "the runtime stage copies the binary from the build stage"
    );
    let user = last_stage
        .iter()
        .rev()
        .find(|(word, _)| word == "USER")
        .map(|(_, user)| user.clone())
        .expect("the runtime stage sets a USER");
    assert!(
        !["root", "0", "0:0"].contains(&user.as_str()),
        "USER {user} is root"
    );
    assert!(last_stage
        .iter()
        .any(|(word, rest)| word == "EXPOSE" && rest.contains("9001")));

    // The build image must be new enough for the workspace's rust-version.
    let workspace = repo_file("Cargo.toml");
    let wanted = workspace
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("the workspace sets rust-version");
    let rust_image = instructions
        .iter()
        .find_map(|(word, rest)| {
            (word == "FROM")
                .then(|| rest.strip_prefix("rust:"))
                .flatten()
        })
        .expect("the build stage uses the rust image");
    let version =
        |v: &str| -> Vec<u32> { v.split(['.', '-']).map_while(|p| p.parse().ok()).collect() };
    assert!(
        version(rust_image) >= version(&wanted),
        "rust:{rust_image} is older than rust-version {wanted}"
    );
}

#[test]
fn the_docker_context_leaves_out_build_output_but_keeps_what_the_build_needs() {
    let ignored: Vec<String> = repo_file(".dockerignore")
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_owned())
        .collect();
    assert!(
        ignored.iter().any(|l| l == "target"),
        "target/ is not sent to the engine"
    );
    for needed in ["migrations", "examples", "Cargo.lock", "api", "domain"] {
        assert!(
            !ignored.iter().any(|l| l == needed),
            "{needed} is needed by the build"
        );
    }
}
