//! The command surface as kubelet and KCM see it: replies, exit codes, bad input refused with
//! nothing created or removed, the install layout with its dot-file, and logs kept secret-free.

mod flex_support;

use flex_support::{BIN, World, kubelet_json, parse_output, tree};
use std::process::Command;

#[test]
fn init_states_every_capability() {
    let w = World::new();
    let r = w.run(&["init"]);
    r.ok();
    let message = format!(
        "strata-flex {}, data root {}: each mount checks the node (`strata-flex check` shows how)",
        strata::BUILD,
        w.root.display()
    );
    assert_eq!(
        r.stdout,
        format!(
            "{{\"status\":\"Success\",\"message\":\"{message}\",\"capabilities\":{{\"attach\":false,\
             \"selinuxRelabel\":true,\"fsGroup\":true,\"supportsMetrics\":true,\"requiresFSResize\":true}}}}\n"
        )
    );
    assert!(!w.root.exists(), "init makes nothing on the host");
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(log.contains(&format!("version=\"{}\"", strata::BUILD)), "{log}");
    w.finish();
}

/// kube-controller-manager runs `init` too, in a container with the plugin dir and neither the
/// kubelet dir nor the data root (kubeadm's static pod): the driver must register there.
#[test]
fn init_succeeds_where_kube_controller_manager_runs_it() {
    let w = World::new();
    let out = w
        .command(&["init"])
        .env("STRATA_FLEX_ROOT", "/proc/strata-x")
        .env("STRATA_FLEX_KUBELET_DIR", w.tmp.path().join("nokubelet"))
        .env("STRATA_FLEX_LOG", w.tmp.path().join("no-log-dir/strata-flex.log"))
        .output()
        .unwrap();
    let r = parse_output(&out);
    r.ok();
    assert_eq!(r.json["capabilities"]["attach"], false);
    assert!(r.message().contains("warning: log file") && r.message().contains("no-log-dir"), "{r:?}");
    assert!(!w.tmp.path().join("no-log-dir").exists());
    // Settings it cannot read are the one thing that fails it: then the driver cannot work at all.
    let missing = w.tmp.path().join("absent.json");
    let out = w.command(&["init"]).env("STRATA_FLEX_CONFIG", &missing).output().unwrap();
    parse_output(&out).failed("named by STRATA_FLEX_CONFIG");
    w.finish();
}

/// A mount's reply gives the volume's size as a person reads it, and the exact bytes.
#[test]
fn replies_give_sizes_a_person_reads() {
    let w = World::new();
    let r = w.mount("p", "pv-h", "rw", &[("size", "1.5Mi")]);
    assert!(r.ok().message().contains("(dir, 1.5Mi (1572864 bytes)) mounted read-write"), "{r:?}");
    w.unmount("p", "pv-h").ok();
    w.finish();
}

/// The node checks `init` no longer makes are made by `mount`, with the reason.
#[test]
fn mount_fails_with_the_reason_when_the_node_is_not_ready() {
    let w = World::new();
    let pod = w.pod_dir("p", "pv1");
    let pod = pod.to_str().unwrap();
    let json = w.mount_json("p", "pv1", "rw", &[]);
    let out = w.command(&["mount", pod, &json]).env("STRATA_FLEX_ROOT", "/proc/strata-x").output().unwrap();
    parse_output(&out).failed("data root /proc/strata-x is not usable");
    let gone = w.tmp.path().join("k2");
    let in_gone = gone.join("pods/p/volumes/strata~flex/pv1");
    let out =
        w.command(&["mount", in_gone.to_str().unwrap(), &json]).env("STRATA_FLEX_KUBELET_DIR", &gone).output().unwrap();
    parse_output(&out).failed(&format!("kubelet dir {} is not usable", gone.display()));
    // Without the right to mount (kubelet runs drivers as root): said plainly, nothing made.
    let out = Command::new("setpriv")
        .args(["--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"])
        .arg(BIN)
        .args(["mount", pod, &json])
        .env("STRATA_FLEX_ROOT", &w.root)
        .env("STRATA_FLEX_KUBELET_DIR", &w.kubelet)
        .env("STRATA_FLEX_LOG", "off")
        .output()
        .unwrap();
    parse_output(&out).failed("no CAP_SYS_ADMIN");
    assert!(w.mounts().is_empty());
    w.finish();
}

/// `strata-flex check`: what `mount` checks, for a person, one line each; exit 1 when any fails.
#[test]
fn check_reports_each_node_check() {
    let w = World::new();
    let out = w.command(&["check"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    for line in ["ok    settings:", "ok    data root:", "ok    kubelet dir:", "ok    log file:", "ok    mount:"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(!w.root.exists(), "check makes no data root");
    let out = w.command(&["check"]).env("STRATA_FLEX_KUBELET_DIR", w.tmp.path().join("none")).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  kubelet dir:") && text.contains("none"), "{text}");
    w.finish();
}

#[test]
fn help_and_version_are_for_a_person_and_touch_nothing() {
    let w = World::new();
    for flag in ["--version", "-V"] {
        let out = w.command(&[flag]).output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("strata-flex {}\n", strata::BUILD));
    }
    for flag in ["--help", "-h"] {
        let out = w.command(&[flag]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Usage: strata-flex") && help.contains("check"), "{help}");
        assert!(!help.contains("\"status\""), "{help}");
    }
    assert!(!w.log.exists(), "no log written");
    assert!(!w.root.exists());
}

#[test]
fn attach_family_and_unknown_commands() {
    let w = World::new();
    let json = kubelet_json(&[&[
        ("kubernetes.io/fsType", ""),
        ("kubernetes.io/pvOrVolumeName", "pv1"),
        ("kubernetes.io/readwrite", "rw"),
    ]]);
    let isattached = w.run(&["isattached", &json, "node-1"]);
    isattached.ok();
    assert_eq!(isattached.json["attached"], serde_json::json!(true), "isattached must always set attached");
    for args in [
        vec!["getvolumename", json.as_str()],
        vec!["attach", json.as_str(), "node-1"],
        vec!["detach", "pv1", "node-1"],
        vec!["waitforattach", "", json.as_str()],
        vec!["frobnicate"],
        vec!["waitfordetach", "/dev/x"],
    ] {
        let r = w.run(&args);
        assert_eq!((r.status(), r.code), ("Not supported", 0), "{args:?}: {r:?}");
    }
    let mount_path = w.kubelet.join("plugins/kubernetes.io/flexvolume/strata/flex/mounts/pv1");
    for args in [
        vec!["mountdevice", mount_path.to_str().unwrap(), "", json.as_str()],
        vec!["unmountdevice", mount_path.to_str().unwrap()],
    ] {
        w.run(&args).ok();
    }
    assert!(!w.root.exists(), "none of these touch state");
    w.finish();
}

/// Runs `args` and asserts a Failure mentioning `want` that changed nothing under the world.
#[track_caller]
fn refused(w: &World, args: &[&str], want: &str) {
    let before = snapshot(w);
    w.run(args).failed(want);
    assert_eq!(snapshot(w), before, "{args:?} created or removed something");
}

fn snapshot(w: &World) -> (Vec<String>, Vec<String>, Vec<String>) {
    let log = format!("f {}", w.log.display());
    let files = tree(w.tmp.path()).into_iter().filter(|p| *p != log).collect();
    (files, w.mounts(), w.loops())
}

#[test]
fn bad_input_is_a_failure_that_changes_nothing() {
    let w = World::new();
    // A node that already has strata state: a volume mounted and unmounted once.
    w.mount("earlier", "pv-earlier", "rw", &[("size", "1Mi")]).ok();
    w.unmount("earlier", "pv-earlier").ok();
    let pod = w.pod_dir("p", "pv1");
    let pod = pod.to_str().unwrap();
    let with = |user: &[(&str, &str)]| w.mount_json("p", "pv1", "rw", user);
    refused(&w, &["mount", pod, "{\"kubernetes.io/pvOrVolumeName\":"], "not a JSON object");
    refused(&w, &["mount", pod, "[\"pv1\"]"], "not an object");
    refused(&w, &["mount", pod], "expected `mount <podVolumeDir> <json>`");
    refused(&w, &["unmount"], "expected `unmount <podVolumeDir>`");
    refused(&w, &["expandvolume", &with(&[])], "expandvolume <json> <deviceMountPath> <newBytes> <oldBytes>");
    refused(&w, &[], "expected `<command>");
    refused(
        &w,
        &["mount", pod, &with(&[("backend", "nfs")])],
        "\"backend\" is \"nfs\"; use one of dir, loop, btrfs, tmpfs",
    );
    refused(&w, &["mount", pod, &with(&[("size", "0")])], "\"size\" \"0\" is zero");
    refused(&w, &["mount", pod, &with(&[("size", "lots")])], "not a number");
    refused(&w, &["mount", pod, &with(&[("size", "20Ei")])], "is larger than");
    refused(&w, &["mount", pod, &with(&[("size", "64m")])], "milli");
    // A misspelt option is named, as CSI names an unknown parameter, not mounted at the default size.
    refused(&w, &["mount", pod, &with(&[("sise", "1Gi")])], "unknown option(s) \"sise\"");
    refused(&w, &["mount", pod, &with(&[("backend", "loop"), ("kubernetes.io/fsType", "btrfs")])], "ext4 or xfs");
    refused(&w, &["mount", pod, &with(&[("volumeID", "../../etc")])], "\"volumeID\" cannot name a strata volume");
    refused(
        &w,
        &["mount", pod, &with(&[("volumeID", "ghost")])],
        "volume ghost named by option \"volumeID\" does not exist",
    );
    refused(&w, &["mount", pod, &with(&[("kubernetes.io/readwrite", "yes")])], "\"ro\" or \"rw\"");
    refused(&w, &["mount", pod, &with(&[("kubernetes.io/secret/token", "*not-base64*")])], "not standard base64");
    refused(&w, &["expandfs", &with(&[]), "", "/x", "2048", "1024"], "volume pv1 does not exist on this node");
    refused(&w, &["expandfs", &with(&[]), "", "/x", "big", "1024"], "\"big\" is not a decimal byte count");
    w.finish();
}

#[test]
fn paths_outside_the_kubelet_dir_are_refused() {
    let w = World::new();
    let outside = w.tmp.path().join("outside/pods/p/volumes/strata~flex/pv1");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    let json = w.mount_json("p", "pv1", "rw", &[]);
    refused(&w, &["mount", outside.to_str().unwrap(), &json], "is not under an allowed prefix");
    refused(&w, &["unmount", outside.to_str().unwrap()], "is not under an allowed prefix");
    refused(&w, &["mount", "relative/pod/dir", &json], "is not absolute");
    let dotdot = format!("{}/../outside/pods/p/volumes/strata~flex/pv1", w.kubelet.display());
    refused(&w, &["mount", &dotdot, &json], "contains '.' or '..'");
    // A symlink inside the kubelet dir that leads out of it.
    std::os::unix::fs::symlink(w.tmp.path().join("outside/pods"), w.kubelet.join("pods")).unwrap();
    let via_link = w.kubelet.join("pods/p/volumes/strata~flex/pv1");
    refused(&w, &["mount", via_link.to_str().unwrap(), &json], "symlink");
    refused(&w, &["unmount", via_link.to_str().unwrap()], "symlink");
    assert!(outside.join("keep").exists());
    w.finish();
}

#[test]
fn a_volume_with_other_options_is_not_taken_over() {
    let w = World::new();
    w.mount("a", "pv1", "rw", &[("backend", "tmpfs"), ("size", "1Mi")]).ok();
    let b = w.pod_dir("b", "pv1");
    let json = w.mount_json("b", "pv1", "rw", &[("backend", "dir")]);
    refused(
        &w,
        &["mount", b.to_str().unwrap(), &json],
        "volume pv1 exists with backend tmpfs, but the options ask for dir",
    );
    w.unmount("a", "pv1").ok();
    w.finish();
}

#[test]
fn installed_layout_reads_its_dot_file_and_logs_outside_the_plugin_dir() {
    let w = World::new();
    let driver_dir = w.tmp.path().join("exec/strata~flex");
    std::fs::create_dir_all(&driver_dir).unwrap();
    let exe = driver_dir.join("flex");
    // A hard link, not a copy: a copy holds a write descriptor that a child forked meanwhile by
    // another test thread inherits, and exec then fails with ETXTBSY.
    std::fs::hard_link(BIN, &exe).or_else(|_| std::fs::copy(BIN, &exe).map(drop)).unwrap();
    let log = w.tmp.path().join("var-log/strata-flex.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let cfg = serde_json::json!({"root": w.root, "kubelet_dir": w.kubelet, "log_file": log, "log_level": "trace"});
    std::fs::write(driver_dir.join(".strata-flex.json"), cfg.to_string()).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&exe);
        for var in ["ROOT", "KUBELET_DIR", "LOG", "LOG_LEVEL", "CONFIG", "LOCK_WAIT"] {
            cmd.env_remove(format!("STRATA_FLEX_{var}"));
        }
        cmd.args(args);
        let output = (0..50)
            .map(|_| cmd.output())
            .find(|r| {
                let busy = matches!(r, Err(e) if e.raw_os_error() == Some(libc::ETXTBSY));
                if busy {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                !busy
            })
            .expect("the driver stayed busy (ETXTBSY) for a second")
            .unwrap();
        parse_output(&output)
    };
    run(&["init"]).ok();
    let pod = w.pod_dir("p", "pv-installed");
    let secret = "aHVudGVyMi1zM2NyZXQ="; // "hunter2-s3cret"
    let json = w.mount_json("p", "pv-installed", "rw", &[("kubernetes.io/secret/password", secret), ("size", "1Mi")]);
    run(&["mount", pod.to_str().unwrap(), &json]).ok();
    assert!(w.root.join("volumes/pv-installed").is_dir(), "the dot-file's root is used");
    run(&["unmount", pod.to_str().unwrap()]).ok();
    let mut names: Vec<_> = std::fs::read_dir(&driver_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, [".strata-flex.json", "flex"], "nothing is written into the plugin dir");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("mount") && text.contains("<redacted>"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains(secret), "a secret reached the log: {text}");
    assert!(!w.log.exists(), "the environment's log path is not used");
    w.finish();
}

#[test]
fn a_broken_dot_file_fails_loudly() {
    let w = World::new();
    let cfg = w.tmp.path().join("cfg.json");
    std::fs::write(&cfg, "{\"root\": 7}").unwrap();
    let out = w.command(&["init"]).env("STRATA_FLEX_CONFIG", &cfg).output().unwrap();
    parse_output(&out).failed("cfg.json");
    w.finish();
}
