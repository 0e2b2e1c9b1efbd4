//! The configuration reference, generated from the declarations so it cannot drift from them.

use super::Settings;

/// One variable as declared: what `docs/configuration.md` lists, and what tests check
/// `--help` and the other documents against.
#[derive(Debug)]
pub struct Variable {
    /// The environment variable, e.g. `EVENT_BUS_CAPACITY`.
    pub name: String,
    /// The command-line option that overrides it, e.g. `--event-bus-capacity`.
    pub option: String,
    /// The value used when it is unset, as written in the declaration; `None` when unset
    /// has a meaning of its own, which `doc` explains.
    pub default: Option<String>,
    /// The group it is listed under.
    pub heading: String,
    /// What it does, every paragraph of its documentation on one line.
    pub doc: String,
}

/// Every declared variable, in declaration order.
pub fn variables() -> Vec<Variable> {
    Settings::command()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_str()?.to_owned();
            let doc = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|doc| sentences(&doc.to_string()))
                .unwrap_or_default();
            Some(Variable {
                name,
                option: format!("--{}", arg.get_long()?),
                default: arg
                    .get_default_values()
                    .first()
                    .map(|value| value.to_string_lossy().into_owned()),
                heading: arg.get_help_heading().unwrap_or("Other").to_owned(),
                doc,
            })
        })
        .collect()
}

/// The text of `docs/configuration.md`: a table per group, printed by
/// `caregraph config-reference` and compared with the file by the tests.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration\n\
         \n\
         <!-- Generated from src/config/settings.rs: edit the declarations there, then run\n\
         \x20    cargo run -- config-reference > docs/configuration.md\n\
         A test fails while this file differs from what that prints. -->\n\
         \n\
         Every setting is read at start-up from its environment variable, or from its\n\
         command-line option, which wins over the variable (`caregraph --help` lists them\n\
         too). Every variable has a default that works on a fresh machine, and an empty\n\
         value counts as unset. Durations are whole numbers in the unit their name ends\n\
         with (`_MS`, `_SECONDS`, `_MINUTES`), sizes are bytes, switches are `true` or\n\
         `false`. Pass secrets as variables, not options: other users of the machine can\n\
         read a process's command line.\n\
         \n\
         See [Before production](../README.md#before-production) for the few to set before\n\
         going live, and [Limits](limits.md) for why each limit has its default.\n",
    );
    let mut heading = String::new();
    for variable in variables() {
        if variable.heading != heading {
            heading.clone_from(&variable.heading);
            out.push_str(&format!(
                "\n## {heading}\n\n| Variable | Option | Default | Meaning |\n|---|---|---|---|\n"
            ));
        }
        let default = variable
            .default
            .map_or_else(|| "unset".to_owned(), |value| format!("`{value}`"));
        out.push_str(&format!(
            "| `{}` | `{}` | {default} | {} |\n",
            variable.name,
            variable.option,
            variable.doc.replace('|', "\\|"),
        ));
    }
    out
}

/// A doc comment as running text: paragraphs on one line, ending with a full stop (clap
/// drops the one of a single-paragraph summary).
fn sentences(doc: &str) -> String {
    let mut text = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}
