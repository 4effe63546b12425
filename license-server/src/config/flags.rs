//! The command-line flags of the server's options, generated from [`OPTIONS`]: a flag's name,
//! value name and help come from the option's row, its value is checked by the option's parser
//! (a bad value is a usage error naming the flag), and [`ServerConfig::apply_flags`] sets it as
//! the files do. No flag of these options is spelled anywhere else.

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::options::{Kind, OPTIONS, ServerOption};
use super::{BackendChoice, ConfigError, ServerConfig, bad, default_dongle};

/// The values given to the options' flags (`--bind`, `--port`, `--dongle`, `--key-file`,
/// `--trusted-proxy`, `--state-db`, `--admin`, `--admin-token-file`, `--relay-listener`).
#[derive(Debug, Clone, Default)]
pub struct ServerFlags {
    given: Vec<(&'static ServerOption, String)>,
}

/// The `--help` line of an option's flag: its description and its file keys.
fn help(option: &ServerOption) -> String {
    format!(
        "{} In the file: {}= (TOML: {}).",
        option.doc, option.ini, option.toml
    )
}

impl clap::Args for ServerFlags {
    fn augment_args(cmd: Command) -> Command {
        OPTIONS
            .iter()
            .filter_map(|o| o.flag.as_ref().map(|f| (o, f)))
            .fold(cmd, |cmd, (option, flag)| {
                let mut arg = Arg::new(flag.long)
                    .long(flag.long)
                    .value_name(flag.value_name)
                    .help(help(option))
                    .value_parser(move |text: &str| {
                        option
                            .set(&mut ServerConfig::default(), text)
                            .map(|()| text.to_owned())
                            .map_err(|expected| format!("expected {expected}"))
                    });
                if let Some(short) = flag.short {
                    arg = arg.short(short);
                }
                if option.kind == Kind::List {
                    arg = arg.action(ArgAction::Append).value_delimiter(',');
                }
                if let Some(bare) = flag.bare {
                    arg = arg.num_args(0..=1).default_missing_value(bare);
                }
                cmd.arg(arg)
            })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ServerFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for option in OPTIONS {
            let Some(flag) = &option.flag else { continue };
            if let Some(values) = matches.get_many::<String>(flag.long) {
                let text = values.map(String::as_str).collect::<Vec<_>>().join(",");
                self.given.retain(|(o, _)| !std::ptr::eq(*o, option));
                self.given.push((option, text));
            }
        }
        Ok(())
    }
}

impl ServerConfig {
    /// Sets the options given on the command line over the file's (or the defaults). A
    /// `--dongle simulated` without `[dongleN]` sections gets the built-in simulated dongle.
    ///
    /// # Errors
    /// A value its option refuses (clap has checked them already), naming the flag.
    pub fn apply_flags(&mut self, flags: &ServerFlags) -> Result<(), ConfigError> {
        for (option, text) in &flags.given {
            let flag = option.flag.as_ref().map_or(option.toml, |f| f.long);
            option
                .set(self, text)
                .map_err(|expected| bad("command line", &format!("--{flag}"), text, expected))?;
        }
        if self.backend == BackendChoice::Simulated && self.dongles.is_empty() {
            self.dongles = vec![default_dongle()];
        }
        Ok(())
    }
}
