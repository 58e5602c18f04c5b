//! The man page, generated from the same clap definitions as `--help` (as ripgrep does), so
//! the two cannot disagree: clap_mangen writes the top of the page; every subcommand, nested
//! ones too, gets a section with its synopsis, description, options and exit status.

use std::io::Write;

use roff::{bold, italic, roman, Roff};

pub fn render(cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    // Built, so that every argument knows how many values it takes.
    let mut cmd = cmd.clone();
    cmd.build();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    let mut page = Roff::new();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        subcommand(&mut page, cmd.get_name(), sub);
    }
    out.write_all(page.render().as_bytes())
}

fn subcommand(page: &mut Roff, parent: &str, cmd: &clap::Command) {
    let name = format!("{parent} {}", cmd.get_name());
    page.control("SH", [name.to_uppercase().as_str()]);
    page.text([bold(name.as_str()), roman(" "), roman(usage(cmd))]);
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        page.control("PP", []);
        page.text([roman(about.to_string())]);
    }
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help")
        .collect();
    if !args.is_empty() {
        page.control("SS", ["Options"]);
        for a in args {
            option(page, a);
        }
    }
    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        page.control("PP", []);
        for line in after.to_string().lines() {
            page.text([roman(line)]);
            page.control("br", []);
        }
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        subcommand(page, &name, sub);
    }
}

fn option(page: &mut Roff, a: &clap::Arg) {
    page.control("TP", []);
    let value = a
        .get_value_names()
        .map(|v| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
    let mut head = Vec::new();
    match (a.get_short(), a.get_long()) {
        (Some(s), Some(l)) => head.push(bold(format!("-{s}, --{l}"))),
        (Some(s), None) => head.push(bold(format!("-{s}"))),
        (None, Some(l)) => head.push(bold(format!("--{l}"))),
        (None, None) => head.push(italic(if value.is_empty() {
            a.get_id().to_string()
        } else {
            value.clone()
        })),
    }
    if takes_value && a.get_long().is_some() {
        head.push(roman(" "));
        head.push(italic(value));
    }
    if let Some(aliases) = a.get_visible_aliases() {
        for al in aliases {
            head.push(roman(", "));
            head.push(bold(format!("--{al}")));
        }
    }
    page.text(head);
    let help = a.get_long_help().or(a.get_help()).map(|h| h.to_string());
    let mut text = help.unwrap_or_default();
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && takes_value {
        text.push_str(&format!(" [default: {}]", defaults.join(", ")));
    }
    page.text([roman(text)]);
}

/// The usage line without the leading "Usage: name sub".
fn usage(cmd: &clap::Command) -> String {
    let u = cmd.clone().render_usage().to_string();
    let u = u.strip_prefix("Usage: ").unwrap_or(&u);
    // clap names the command by its path ("rpm-verity keyring load" or "keyring load").
    let own = format!("{} ", cmd.get_name());
    match u.find(&own) {
        Some(i) => u[i + own.len()..].to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_and_option_is_on_the_page() {
        use clap::CommandFactory;
        let cmd = crate::Cli::command();
        let mut out = Vec::new();
        render(&cmd, &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let heading = format!(".SH \"RPM-VERITY {}\"", sub.get_name().to_uppercase());
            assert!(page.contains(&heading), "{heading} missing");
            for a in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(l) = a.get_long().filter(|l| *l != "help") {
                    assert!(
                        page.contains(&format!("\\-\\-{}", l.replace('-', "\\-"))),
                        "--{l} of {} missing",
                        sub.get_name()
                    );
                }
            }
        }
    }
}
