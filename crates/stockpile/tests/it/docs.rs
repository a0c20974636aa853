//! The documentation checked against the code it describes: the settings tables against the
//! variables the service reads, the default log filter, the runbooks' commands, and the
//! operation count of the fuzzing section against the OpenAPI document.

use std::collections::BTreeSet;

use stockpile::settings::{Settings, Variable};
use stockpile::telemetry::DEFAULT_LOG_FILTER;

/// The variables read outside the layers, which a settings table may name too.
const OUTSIDE_THE_LAYERS: [&str; 2] = ["STOCKPILE_CONFIG", "RUST_LOG"];

fn read(path_from_the_workspace: &str) -> String {
    let path = format!(
        "{}/../../{path_from_the_workspace}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The cells of each row of the first table under `heading`, up to the next heading.
fn table_rows(text: &str, heading: &str) -> Vec<Vec<String>> {
    let section = text
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading}"))
        .split("\n#")
        .next()
        .unwrap();
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|row| {
            row.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The variables a row's first cell names: every upper-case word in backticks.
fn named_variables(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

fn variables_the_service_reads() -> BTreeSet<String> {
    Settings::variables().iter().map(Variable::name).collect()
}

/// Asserts that the table under `heading` of `file` names each variable the service reads
/// once, and no other (besides the ones read outside the layers).
fn check_settings_table(file: &str, heading: &str) {
    let mut documented = BTreeSet::new();
    for row in table_rows(&read(file), heading) {
        for name in named_variables(&row[0]) {
            if !OUTSIDE_THE_LAYERS.contains(&name.as_str()) {
                assert!(documented.insert(name.clone()), "{file}: {name} twice");
            }
        }
    }
    let read = variables_the_service_reads();
    assert_eq!(
        (
            read.difference(&documented).collect::<Vec<_>>(),
            documented.difference(&read).collect::<Vec<_>>()
        ),
        (vec![], vec![]),
        "{file}: (read but not documented, documented but not read)"
    );
}

#[test]
fn docs_configuration_md_documents_exactly_the_variables_read_each_with_its_toml_key() {
    check_settings_table("docs/configuration.md", "## Every setting");
    for row in table_rows(&read("docs/configuration.md"), "## Every setting") {
        let name = row[0].trim_matches('`');
        let key = if OUTSIDE_THE_LAYERS.contains(&name) {
            "—".to_owned()
        } else {
            format!("`{}`", name.to_ascii_lowercase())
        };
        assert_eq!(row[1], key, "the TOML key of {name}");
    }
}

#[test]
fn the_readme_documents_exactly_the_variables_read() {
    check_settings_table("README.md", "## Configuration");
}

#[test]
fn docs_api_md_documents_exactly_the_variables_read() {
    check_settings_table("docs/API.md", "## Configuration");
}

#[test]
fn the_default_log_filter_is_the_documented_one() {
    let row = table_rows(&read("docs/configuration.md"), "## Every setting")
        .into_iter()
        .find(|row| row[0] == "`RUST_LOG`")
        .unwrap();
    assert_eq!(row[2], format!("`{DEFAULT_LOG_FILTER}`"));
    assert!(read("docs/operations.md").contains(&format!("default `{DEFAULT_LOG_FILTER}`")));
}

/// Every file a newcomer copies commands from.
fn documents() -> Vec<String> {
    let docs = format!("{}/../../docs", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&docs)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    names.push("README.md".into());
    // The Chinese guide is copied from as much as the English one.
    names.push("docs/zh/deployment.md".into());
    names.sort();
    names
}

/// `curl :8080/…` and `curl localhost:8080/…` lean on curl guessing the scheme, which some
/// versions refuse; a command to copy names its URL in full.
#[test]
fn every_curl_command_in_the_docs_names_a_full_url() {
    let mut bare = Vec::new();
    for file in documents() {
        for (number, line) in read(&file).lines().enumerate() {
            let Some((_, command)) = line.split_once("curl ") else {
                continue;
            };
            let command = command.split('`').next().unwrap_or_default();
            for word in command.split_whitespace() {
                let word = word.trim_matches(|c| c == '\'' || c == '"');
                let names_a_host = word.starts_with(':')
                    || word.starts_with("localhost")
                    || word.starts_with("127.0.0.1");
                if names_a_host {
                    bare.push(format!("{file}:{}: {word}", number + 1));
                }
            }
        }
    }
    assert!(bare.is_empty(), "URLs without a scheme: {bare:#?}");
}

/// The keys of an OpenAPI path item that are operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn the_fuzzing_section_counts_the_operations_of_the_openapi_document() {
    let document: serde_json::Value =
        serde_json::from_str(&stockpile_api::openapi().to_json().unwrap()).unwrap();
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|path| {
            path.as_object()
                .unwrap()
                .keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .count()
        })
        .sum();
    let text = read("docs/reliability.md");
    let counted = text
        .split("run over all ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    assert_eq!(counted, operations.to_string());
}
