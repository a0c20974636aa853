//! The deployment guide is written in English (`docs/deployment.md`) and Chinese
//! (`docs/zh/deployment.md`), and the two must say the same: the same sections (headings of
//! the same levels, in the same order), the same settings, the same commands (fenced code, its
//! shell comments being prose that is translated), the same inline code and the same links.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// What a guide says that a translation must keep.
#[derive(Debug, PartialEq, Eq)]
struct Outline {
    /// The level of every heading, in order.
    sections: Vec<usize>,
    /// Every `UPPER_SNAKE_CASE` word: the variables the binary and compose read.
    settings: BTreeSet<String>,
    /// The lines of fenced code, without shell comments.
    commands: Vec<String>,
    /// Every inline code span of the prose.
    inline_code: BTreeSet<String>,
    /// Every link's target, files resolved from the repository root; links between the two
    /// guides are left out.
    links: BTreeSet<String>,
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// `path` with `.` and `..` resolved, relative to the docs folder.
fn normalised(path: &Path) -> String {
    let mut parts: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir => {}
            other => parts.push(other),
        }
    }
    parts
        .iter()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A line of fenced shell code without its comment (`#` at the start or after a blank).
fn without_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let comment = (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()));
    line[..comment.unwrap_or(line.len())].trim_end()
}

fn is_setting(word: &str) -> bool {
    word.contains('_')
        && word.chars().any(|c| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn outline(relative: &str) -> Outline {
    let path = docs().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let folder = Path::new(relative).parent().unwrap_or(Path::new(""));
    let guides = ["deployment.md", "zh/deployment.md"];

    let mut sections = Vec::new();
    let mut commands = Vec::new();
    let mut prose = String::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code {
            let command = without_comment(line);
            if !command.is_empty() {
                commands.push(command.to_owned());
            }
        } else {
            let level = line.chars().take_while(|&c| c == '#').count();
            if level > 0 && line[level..].starts_with(' ') {
                sections.push(level);
            }
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let inline_code = prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|code| code.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let settings = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| is_setting(word))
        .map(str::to_owned)
        .collect();
    let links = prose
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target))
        .filter_map(|target| {
            if target.contains("://") {
                return Some(target.to_owned());
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = normalised(&folder.join(file));
            (!guides.contains(&file.as_str())).then(|| format!("{file}#{anchor}"))
        })
        .collect();
    Outline {
        sections,
        settings,
        commands,
        inline_code,
        links,
    }
}

#[test]
fn the_chinese_deployment_guide_keeps_every_section_setting_command_and_link() {
    let english = outline("deployment.md");
    let chinese = outline("zh/deployment.md");
    assert!(english.sections.len() > 3 && english.settings.contains("DATABASE_URL"));
    assert!(english
        .links
        .contains("configuration.md#production-refusals"));
    assert_eq!(chinese.sections, english.sections, "the headings differ");
    assert_eq!(
        chinese.settings, english.settings,
        "the settings named differ"
    );
    assert_eq!(chinese.commands, english.commands, "the commands differ");
    assert_eq!(
        chinese.inline_code, english.inline_code,
        "the inline code differs"
    );
    assert_eq!(chinese.links, english.links, "the links differ");
}

#[test]
fn comments_are_not_commands() {
    assert_eq!(without_comment("export A=1   # required"), "export A=1");
    assert_eq!(without_comment("# a note"), "");
    assert_eq!(without_comment("curl -s x#y"), "curl -s x#y");
}
