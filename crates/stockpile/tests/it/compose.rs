//! `docker/docker-compose.yml` and `docker/Dockerfile` describe a deployment the binary
//! accepts: no Docker engine is needed to check that the app is wired to healthy PostgreSQL
//! and Redis, sets only variables the binary reads, and passes the production checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Value};
use stockpile::settings::{AppEnv, CacheBackendKind, FlatSettings, Settings, Variable};
use yaml_rust2::{Yaml, YamlLoader};

/// What an operator exports before `docker compose up`: a token of production length, with
/// letters so that figment reads it as text, as the binary's environment provider would.
const ADMIN_TOKEN: &str = "compose-test-admin-token-0123456789abcdef";

fn docker_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docker")
        .join(name)
}

fn read(name: &str) -> String {
    let path = docker_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Yaml {
    let mut documents = YamlLoader::load_from_str(&read("docker-compose.yml"))
        .unwrap_or_else(|e| panic!("docker/docker-compose.yml is not YAML: {e}"));
    assert_eq!(documents.len(), 1, "one YAML document");
    documents.remove(0)
}

fn text<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, is {yaml:?}"))
}

/// Compose's variable interpolation, as far as the file uses it: `$$`, `${NAME}`,
/// `${NAME:-default}` and `${NAME:?message}` (an unset or empty NAME is an error).
fn interpolate(value: &str, vars: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let body = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(body, after)| {
                rest = after;
                body
            })
            .ok_or_else(|| format!("only ${{...}} references are handled here: {value}"))?;
        let set = |name: &str| vars.get(name).copied().filter(|v| !v.is_empty());
        if let Some((name, default)) = body.split_once(":-") {
            out.push_str(set(name).unwrap_or(default));
        } else if let Some((name, message)) = body.split_once(":?") {
            out.push_str(set(name).ok_or_else(|| format!("{name}: {message}"))?);
        } else {
            out.push_str(vars.get(body).copied().unwrap_or_default());
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The app's environment after interpolation with `vars`.
fn app_environment(vars: &BTreeMap<&str, &str>) -> Result<BTreeMap<String, String>, String> {
    let compose = compose();
    let environment = compose["services"]["app"]["environment"]
        .as_hash()
        .unwrap_or_else(|| panic!("the app's environment should be a map of NAME: value"));
    environment
        .iter()
        .map(|(name, value)| {
            let name = text(name, "a variable name").to_owned();
            let value = match value {
                Yaml::String(s) => interpolate(s, vars)?,
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                other => panic!("{name} has a value of an unexpected kind: {other:?}"),
            };
            Ok((name, value))
        })
        .collect()
}

/// The variables of the settings, upper case as in the environment.
fn setting_variables() -> Vec<String> {
    Settings::variables().iter().map(Variable::name).collect()
}

#[test]
fn postgres_and_redis_are_healthy_dependencies_with_named_volumes() {
    let compose = compose();
    let services = &compose["services"];
    for name in ["postgres", "redis", "app"] {
        assert!(
            services[name].as_hash().is_some(),
            "service {name} is missing"
        );
    }
    let volumes = compose["volumes"]
        .as_hash()
        .unwrap_or_else(|| panic!("named volumes are declared at the top level"));
    for (name, probe) in [("postgres", "pg_isready"), ("redis", "redis-cli")] {
        let service = &services[name];
        let test = service["healthcheck"]["test"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} has a healthcheck test"));
        assert!(
            test.iter()
                .any(|part| part.as_str().is_some_and(|p| p.contains(probe))),
            "{name}'s healthcheck should use {probe}: {test:?}"
        );
        let mounts = service["volumes"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} mounts a volume"));
        let named = mounts
            .iter()
            .filter_map(|mount| mount.as_str()?.split_once(':'))
            .any(|(source, _)| volumes.contains_key(&Yaml::String(source.to_owned())));
        assert!(
            named,
            "{name} should mount a volume declared at the top level: {mounts:?}"
        );
        assert_eq!(
            text(
                &services["app"]["depends_on"][name]["condition"],
                "condition"
            ),
            "service_healthy",
            "the app waits for {name} to be healthy"
        );
    }
}

#[test]
fn the_app_is_built_from_the_dockerfile_published_on_8080_and_health_checked() {
    let compose = compose();
    let app = &compose["services"]["app"];
    assert_eq!(text(&app["build"]["context"], "build.context"), "..");
    assert_eq!(
        text(&app["build"]["dockerfile"], "build.dockerfile"),
        "docker/Dockerfile"
    );
    let ports = app["ports"]
        .as_vec()
        .unwrap_or_else(|| panic!("the app publishes ports"));
    assert!(
        ports.iter().any(|p| p.as_str() == Some("8080:8080")),
        "8080 is published: {ports:?}"
    );
    assert!(
        app["healthcheck"]["test"].as_vec().is_some(),
        "the app has a healthcheck of its own"
    );
}

#[test]
fn the_app_sets_only_variables_the_binary_reads() {
    // `RUST_LOG` is read by the log filter, outside the settings.
    let mut known = setting_variables();
    known.push("RUST_LOG".to_owned());
    let vars = BTreeMap::from([("ADMIN_TOKEN", ADMIN_TOKEN)]);
    let environment = app_environment(&vars).unwrap_or_else(|e| panic!("{e}"));
    for name in environment.keys() {
        assert!(
            known.contains(name),
            "{name} is not a variable the binary reads; known: {known:?}"
        );
    }
}

#[test]
fn the_app_will_not_start_without_an_admin_token() {
    let error = app_environment(&BTreeMap::new())
        .err()
        .unwrap_or_else(|| panic!("interpolation should fail without ADMIN_TOKEN"));
    assert!(error.starts_with("ADMIN_TOKEN"), "{error}");
}

#[test]
fn the_app_settings_pass_the_production_checks() {
    let vars = BTreeMap::from([("ADMIN_TOKEN", ADMIN_TOKEN)]);
    let environment = app_environment(&vars).unwrap_or_else(|e| panic!("{e}"));
    // As the binary's environment provider does: its variables only, lower-case keys moved
    // into their sections, values parsed by figment.
    let settings = setting_variables();
    let provided: Dict = environment
        .iter()
        .filter(|(name, _)| settings.contains(name))
        .map(|(name, value)| {
            let value: Value = value.parse().unwrap_or_else(|e| match e {});
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    let settings = Settings::from_figment(
        Settings::defaults().merge(FlatSettings::new(Serialized::defaults(provided))),
    )
    .unwrap_or_else(|e| panic!("the compose settings are refused: {e}"));
    assert_eq!(settings.app_env, AppEnv::Production);
    assert_eq!(settings.cache.backend, CacheBackendKind::Redis);
    assert!(settings.database.url.expose().starts_with("postgres://"));
    assert!(settings.database.url.expose().contains("@postgres:5432/"));
    assert_eq!(
        settings.redis.url.as_ref().map(|u| u.expose()),
        Some("redis://redis:6379/0")
    );
    assert_eq!(
        settings.admin.token.as_ref().map(|t| t.expose()),
        Some(ADMIN_TOKEN)
    );
    assert_eq!(settings.http.bind_addr, "0.0.0.0:8080");
}

#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_unprivileged_with_a_healthcheck() {
    // One instruction per logical line: a trailing backslash continues it on the next.
    let (mut logical, mut current) = (Vec::new(), String::new());
    for line in read("Dockerfile").lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => current.push_str(continued),
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let instructions: Vec<(String, String)> = logical
        .iter()
        .filter_map(|line| {
            let (word, rest) = line.trim().split_once(char::is_whitespace)?;
            Some((word.to_ascii_uppercase(), rest.trim().to_owned()))
        })
        .collect();
    let arguments = |word: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(w, _)| w == word)
            .map(|(_, rest)| rest.as_str())
            .collect()
    };
    let stages = arguments("FROM");
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    assert!(stages[0].starts_with("rust:"), "{stages:?}");
    assert!(stages[1].starts_with("debian:bookworm-slim"), "{stages:?}");
    let users = arguments("USER");
    let user = users
        .last()
        .unwrap_or_else(|| panic!("the runtime stage sets a USER"));
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        name != "root" && name != "0",
        "the runtime user is not root: {user}"
    );
    assert!(
        arguments("HEALTHCHECK")
            .iter()
            .any(|h| h.contains("/health")),
        "a HEALTHCHECK probes /health"
    );
    assert_eq!(arguments("EXPOSE"), ["8080"]);
    assert_eq!(arguments("ENTRYPOINT"), ["[\"stockpile\"]"]);
    assert_eq!(arguments("CMD"), ["[\"serve\"]"]);
}
