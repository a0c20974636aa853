//! `docker/docker-compose.yml` and `docker/Dockerfile` describe a deployment the binary
//! accepts: no Docker engine is needed to check that the app is wired to healthy PostgreSQL
//! and Redis, sets only variables the binary reads, and passes the production checks. The
//! fleets of `docker/compose.sentinel.yml` and `docker/compose.cluster.yml` are checked the same
//! way, instance by instance, with the nginx of `docker/nginx.conf` in front of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Value};
use stockpile::settings::{AppEnv, CacheBackendKind, FlatSettings, Settings, Variable};
use stockpile_infrastructure::RedisServers;
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

/// The fleets: each compose file, and the topology its instances reach Redis by.
const FLEETS: [(&str, &str); 2] = [
    ("compose.sentinel.yml", "sentinel"),
    ("compose.cluster.yml", "cluster"),
];

fn compose() -> Yaml {
    compose_file("docker-compose.yml")
}

fn compose_file(name: &str) -> Yaml {
    let mut documents = YamlLoader::load_from_str(&read(name))
        .unwrap_or_else(|e| panic!("docker/{name} is not YAML: {e}"));
    assert_eq!(documents.len(), 1, "one YAML document");
    documents.remove(0)
}

/// The names of a fleet's instances: its services named `app-…`.
fn instances(compose: &Yaml) -> Vec<String> {
    let services = compose["services"]
        .as_hash()
        .unwrap_or_else(|| panic!("services should be a map"));
    services
        .keys()
        .map(|name| text(name, "a service name").to_owned())
        .filter(|name| name.starts_with("app-"))
        .collect()
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
    environment_of(&compose()["services"]["app"], vars)
}

/// A service's environment after interpolation with `vars`.
fn environment_of(
    service: &Yaml,
    vars: &BTreeMap<&str, &str>,
) -> Result<BTreeMap<String, String>, String> {
    let environment = service["environment"]
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

/// Fails unless every variable of `environment` is one the binary reads.
fn assert_only_known_variables(environment: &BTreeMap<String, String>) {
    // `RUST_LOG` is read by the log filter, outside the settings.
    let mut known = setting_variables();
    known.push("RUST_LOG".to_owned());
    for name in environment.keys() {
        assert!(
            known.contains(name),
            "{name} is not a variable the binary reads; known: {known:?}"
        );
    }
}

/// The settings the binary would load from `environment`, or why it would refuse to start.
fn settings_from(environment: &BTreeMap<String, String>) -> Settings {
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
    Settings::from_figment(
        Settings::defaults().merge(FlatSettings::new(Serialized::defaults(provided))),
    )
    .unwrap_or_else(|e| panic!("the compose settings are refused: {e}"))
}

#[test]
fn the_app_sets_only_variables_the_binary_reads() {
    let vars = BTreeMap::from([("ADMIN_TOKEN", ADMIN_TOKEN)]);
    assert_only_known_variables(&app_environment(&vars).unwrap_or_else(|e| panic!("{e}")));
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
    let settings = settings_from(&app_environment(&vars).unwrap_or_else(|e| panic!("{e}")));
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

#[test]
fn every_fleet_instance_has_one_environment_that_passes_the_production_checks() {
    let vars = BTreeMap::from([("ADMIN_TOKEN", ADMIN_TOKEN)]);
    for (file, topology) in FLEETS {
        let compose = compose_file(file);
        let services = &compose["services"];
        let instances = instances(&compose);
        assert!(instances.len() >= 2, "{file}: a fleet of {instances:?}");
        let first = environment_of(&services[instances[0].as_str()], &vars)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for instance in &instances {
            let service = &services[instance.as_str()];
            // One database, one topology, one prefix: a write on any instance makes the
            // answers of every other one stale.
            let environment = environment_of(service, &vars).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                environment, first,
                "{file}: {instance} differs from {}",
                instances[0]
            );
            let refused = environment_of(service, &BTreeMap::new());
            assert!(
                refused.is_err_and(|e| e.starts_with("ADMIN_TOKEN")),
                "{file}: {instance} must not start without an admin token"
            );
            assert!(
                service["ports"].is_badvalue(),
                "{file}: only nginx publishes a port, not {instance}"
            );
        }
        assert_only_known_variables(&first);
        let settings = settings_from(&first);
        assert_eq!(settings.app_env, AppEnv::Production, "{file}");
        assert_eq!(settings.cache.backend, CacheBackendKind::Redis, "{file}");
        assert!(
            settings.database.url.expose().contains("@postgres:5432/"),
            "{file}"
        );
        let servers = settings
            .redis
            .servers()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let (named, addresses) = match &servers {
            RedisServers::Sentinel { sentinels, .. } => ("sentinel", sentinels),
            RedisServers::Cluster { seeds } => ("cluster", seeds),
            RedisServers::Standalone => panic!("{file}: a fleet on a standalone Redis"),
        };
        assert_eq!(named, topology, "{file}");
        for (host, _) in addresses.iter() {
            assert!(
                services[host].as_hash().is_some(),
                "{file}: {host} is named by the instances but is no service"
            );
            assert!(
                waits_for(services, &instances[0], host),
                "{file}: the first instance waits for {host}"
            );
        }
        let others = instances.iter().skip(1);
        for instance in others {
            assert_eq!(
                text(
                    &services[instance.as_str()]["depends_on"][instances[0].as_str()]["condition"],
                    "condition"
                ),
                "service_healthy",
                "{file}: {instance} waits for {} to have migrated the schema",
                instances[0]
            );
        }
    }
}

/// Whether `service` starts only once `other` is healthy: it depends on it so, or on a service
/// that does and has completed (the cluster's one-shot `redis-cluster-init`).
fn waits_for(services: &Yaml, service: &str, other: &str) -> bool {
    let condition = |of: &str, on: &str| services[of]["depends_on"][on]["condition"].as_str();
    condition(service, other) == Some("service_healthy")
        || services[service]["depends_on"]
            .as_hash()
            .into_iter()
            .flatten()
            .filter_map(|(name, _)| name.as_str())
            .any(|step| {
                condition(service, step) == Some("service_completed_successfully")
                    && condition(step, other) == Some("service_healthy")
            })
}

/// The directives of `docker/nginx.conf` named `name`, each as its arguments.
fn nginx_directives<'a>(config: &'a str, name: &str) -> Vec<Vec<&'a str>> {
    config
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter_map(|line| line.strip_suffix(';'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.first() == Some(&name))
        .map(|words| words[1..].to_vec())
        .collect()
}

#[test]
fn the_fleets_nginx_balances_every_instance_on_connections_it_closes_first() {
    let config = read("nginx.conf");
    let upstream: Vec<String> = nginx_directives(&config, "server")
        .into_iter()
        .map(|arguments| arguments.join(" "))
        .collect();
    for directive in [
        vec!["proxy_http_version", "1.1"],
        vec!["proxy_set_header", "Connection", "\"\""],
        vec!["proxy_pass", "http://stockpile"],
        vec!["keepalive", "32"],
    ] {
        assert!(
            nginx_directives(&config, directive[0]).contains(&directive[1..].to_vec()),
            "docker/nginx.conf needs `{}`",
            directive.join(" ")
        );
    }
    let idle = nginx_directives(&config, "keepalive_timeout");
    let idle_s: u64 = match idle.as_slice() {
        [arguments] => arguments[0]
            .strip_suffix('s')
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("keepalive_timeout in seconds: {arguments:?}")),
        other => panic!("one upstream keepalive_timeout, not {other:?}"),
    };
    let vars = BTreeMap::from([("ADMIN_TOKEN", ADMIN_TOKEN)]);
    for (file, _) in FLEETS {
        let compose = compose_file(file);
        let services = &compose["services"];
        let instances = instances(&compose);
        let balanced: Vec<String> = instances.iter().map(|i| format!("{i}:8080")).collect();
        assert_eq!(upstream, balanced, "{file}: nginx balances every instance");
        let settings = settings_from(
            &environment_of(&services[instances[0].as_str()], &vars)
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(
            settings.http.keep_alive_s > idle_s,
            "{file}: HTTP_KEEP_ALIVE_S ({}) must exceed nginx's keepalive_timeout ({idle_s} s)",
            settings.http.keep_alive_s
        );
        let nginx = &services["nginx"];
        let mounts = nginx["volumes"]
            .as_vec()
            .unwrap_or_else(|| panic!("{file}: nginx mounts its configuration"));
        assert!(
            mounts
                .iter()
                .any(|m| m.as_str() == Some("./nginx.conf:/etc/nginx/nginx.conf:ro")),
            "{file}: nginx runs docker/nginx.conf: {mounts:?}"
        );
        assert_eq!(
            nginx["ports"]
                .as_vec()
                .map(|ports| ports.iter().filter_map(Yaml::as_str).collect::<Vec<_>>()),
            Some(vec!["8080:8080"]),
            "{file}: nginx publishes 8080"
        );
        for instance in &instances {
            assert_eq!(
                text(
                    &nginx["depends_on"][instance.as_str()]["condition"],
                    "condition"
                ),
                "service_healthy",
                "{file}: nginx waits for {instance}"
            );
        }
    }
}
