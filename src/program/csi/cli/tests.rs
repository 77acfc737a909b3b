//! The command line's shape: defaults, formats, global options, help on every argument.

use super::*;
use clap::Parser;
use std::path::Path;

#[test]
fn the_command_line_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn client_output_formats() {
    let format = |args: &[&str]| {
        let cli = Cli::try_parse_from([&["strata-csi", "client"], args, &["list-volumes"]].concat())?;
        let Command::Client(a) = cli.command else { panic!("not client") };
        Ok::<_, clap::Error>(a.format())
    };
    assert_eq!(format(&[]).unwrap(), None);
    assert_eq!(format(&["-o", "yaml"]).unwrap(), Some(OutputFormat::Yaml));
    assert_eq!(format(&["--output", "json"]).unwrap(), Some(OutputFormat::Json));
    assert_eq!(format(&["--json"]).unwrap(), Some(OutputFormat::Json));
    assert!(format(&["--json", "-o", "yaml"]).is_err());
    assert_eq!(format(&["-o", "wide"]).unwrap(), Some(OutputFormat::Wide));
    assert_eq!(format(&["-o", "name"]).unwrap(), Some(OutputFormat::Name));
    assert!(format(&["-o", "table"]).is_err());
}

#[test]
fn serve_defaults() {
    let cli = Cli::try_parse_from(["strata-csi", "serve"]).unwrap();
    let Command::Serve(a) = cli.command else { panic!("not serve") };
    assert_eq!(a.backends, vec![Kind::Dir, Kind::Loop, Kind::Tmpfs]);
    assert_eq!(a.allowed_path_prefixes, vec![PathBuf::from("/var/lib/kubelet")]);
    assert_eq!(a.root, PathBuf::from("/var/lib/strata"));
    assert_eq!(a.driver_name, "strata.csi.dev");
    let cli = Cli::try_parse_from([
        "strata-csi",
        "serve",
        "--backends",
        "loop,btrfs",
        "--allowed-path-prefix",
        "/a",
        "--allowed-path-prefix",
        "/b",
        "--endpoint",
        "tcp://127.0.0.1:9000",
    ])
    .unwrap();
    let Command::Serve(a) = cli.command else { panic!("not serve") };
    assert_eq!(a.backends, vec![Kind::Loop, Kind::Btrfs]);
    assert_eq!(a.allowed_path_prefixes.len(), 2);
    assert!(Cli::try_parse_from(["strata-csi", "serve", "--backends", "zfs"]).is_err());
}

#[test]
fn client_options_work_after_the_subcommand_too() {
    let parse = |args: &[&str]| {
        let cli = Cli::try_parse_from([&["strata-csi", "client"], args].concat()).unwrap();
        let Command::Client(a) = cli.command else { panic!("not client") };
        a
    };
    let a = parse(&["list-volumes", "--json", "--endpoint", "unix:///tmp/x.sock", "--timeout", "5"]);
    assert_eq!(a.format(), Some(OutputFormat::Json));
    assert_eq!(a.endpoint.to_string(), "unix:///tmp/x.sock");
    assert_eq!(a.timeout, 5);
    let a = parse(&["stage", "v@n", "--staging-path", "/s", "-o", "yaml"]);
    assert_eq!(a.format(), Some(OutputFormat::Yaml));
    let a = parse(&["--endpoint", "tcp://127.0.0.1:1", "info"]);
    assert_eq!(a.endpoint.to_string(), "tcp://127.0.0.1:1");
}

/// Every argument of every subcommand, with the path of subcommands leading to it.
fn all_args(cmd: &clap::Command, path: String, out: &mut Vec<(String, String, bool)>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" || arg.is_hide_set() {
            continue;
        }
        out.push((path.clone(), id.to_owned(), arg.get_help().is_some() || arg.get_long_help().is_some()));
    }
    for sub in cmd.get_subcommands() {
        all_args(sub, format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_argument_has_help_text() {
    use clap::CommandFactory;
    let mut args = Vec::new();
    all_args(&Cli::command(), "strata-csi".into(), &mut args);
    assert!(args.len() > 60, "the walk found the arguments: {}", args.len());
    let bare: Vec<String> = args.iter().filter(|a| !a.2).map(|(p, id, _)| format!("{p}: {id}")).collect();
    assert_eq!(bare, Vec::<String>::new(), "arguments without help text");
}

#[test]
fn version_and_inspect_parse() {
    let err = Cli::try_parse_from(["strata-csi", "--version"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
    assert_eq!(err.to_string(), format!("strata-csi {}\n", crate::BUILD));
    assert!(crate::BUILD.starts_with(&format!("{} (commit ", env!("CARGO_PKG_VERSION"))), "{}", crate::BUILD);
    let cli = Cli::try_parse_from(["strata-csi", "inspect", "v@n", "--root", "/r", "-o", "json"]).unwrap();
    let Command::Inspect(a) = cli.command else { panic!("not inspect") };
    assert_eq!((a.volume_id.as_str(), a.root.as_path(), a.output), ("v@n", Path::new("/r"), Some(OutputFormat::Json)));
}

#[test]
fn paths_that_depend_on_the_working_directory_are_refused() {
    for args in [
        &["serve", "--root", "relative/root"][..],
        &["serve", "--allowed-path-prefix", "kubelet"],
        &["serve", "--allowed-path-prefix", "/var/lib/kubelet,pods"],
        &["repair", "--root", "."],
        &["inspect", "v", "--root", "root"],
    ] {
        let err = Cli::try_parse_from([&["strata-csi"], args].concat()).unwrap_err().to_string();
        assert!(err.contains("is not an absolute path"), "{args:?}: {err}");
    }
}

#[test]
fn lists_take_commas_as_a_configmap_writes_them() {
    let cli = Cli::try_parse_from([
        "strata-csi",
        "serve",
        "--allowed-path-prefix",
        "/a,/b",
        "--overcommit",
        "tmpfs=2,loop=1.5",
        "--log-level",
        "debug",
    ])
    .unwrap();
    let Command::Serve(a) = cli.command else { panic!("not serve") };
    assert_eq!(a.allowed_path_prefixes, [PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(a.overcommit, [(Kind::Tmpfs, 2.0), (Kind::Loop, 1.5)]);
    assert_eq!(a.log_level, Some(LogLevel::Debug));
    assert!(!a.rename_node);
}

/// Every serve flag but --rename-node has its STRATA_* variable, named after the flag.
#[test]
fn every_serve_flag_has_its_environment_variable() {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").unwrap();
    let mut flags = 0;
    for arg in serve.get_arguments().filter(|a| a.get_long().is_some_and(|l| l != "help")) {
        let long = arg.get_long().unwrap();
        let want = format!("STRATA_{}", long.to_uppercase().replace('-', "_"));
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        if long == "rename-node" {
            assert_eq!(env, None, "renaming is never a standing setting");
        } else {
            assert_eq!(env, Some(want), "--{long}");
            flags += 1;
        }
    }
    assert!(flags >= 12, "{flags}");
}

/// --controller-only says what works without mount privileges: CreateVolume does, not only
/// expansion.
#[test]
fn controller_only_help_says_what_it_serves() {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").unwrap();
    let arg = serve.get_arguments().find(|a| a.get_long() == Some("controller-only")).unwrap();
    let help = arg.get_help().unwrap().to_string();
    assert!(help.contains("Controller calls") && help.contains("own root") && help.contains("node calls"), "{help}");
    assert!(!help.contains("(expansion)"), "{help}");
}
