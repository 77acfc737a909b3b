//! `strata-csi inspect` against real volumes (root tier): a loop volume staged and published
//! through the CSI server, a volume mounted by strata-flex on the same root, a publication
//! unmounted behind strata's back, and a volume that does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use serde_json::Value;
use std::process::Command;

fn inspect(s: &Server, id: &str) -> (bool, Value) {
    let out = Command::new(BIN).args(["inspect", id, "-o", "json", "--root"]).arg(&s.root).output().unwrap();
    (out.status.success(), serde_json::from_slice(&out.stdout).unwrap())
}

fn client_ok(s: &Server, args: &[&str]) -> Value {
    let out = s.client(&[args, &["-o", "json"]].concat());
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_shows_the_staging_the_publications_and_the_loop_device() {
    require_root();
    let s = Server::start();
    let created = client_ok(&s, &["create-volume", "pvc-seen", "--size", "32Mi", "--param", "backend=loop"]);
    let id = created["volume_id"].as_str().unwrap().to_owned();
    let (staging, target) = (s.path("staging/seen"), s.path("pods/a/seen"));
    std::fs::create_dir_all(s.path("staging")).unwrap();
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    client_ok(&s, &["stage", &id, "--staging-path", &staging]);
    client_ok(&s, &["publish", &id, "--staging-path", &staging, "--target-path", &target]);

    let (ok, v) = inspect(&s, &id);
    assert!(ok, "{v}");
    assert_eq!(v["volume_id"], "pvc-seen");
    assert_eq!((v["backend"].as_str(), v["fs_type"].as_str()), (Some("loop"), Some("ext4")));
    assert_eq!(v["capacity_bytes"], 32 << 20);
    assert_eq!(v["condition"], "ok");
    assert_eq!(v["staged_by"], "strata-csi (CSI)");
    let device = v["loop_devices"][0].as_str().unwrap().to_owned();
    assert!(device.starts_with("/dev/loop"), "{v}");
    assert_eq!(v["staging"]["path"], staging.as_str());
    assert_eq!(
        v["staging"]["mount"].as_str().unwrap().split(' ').take(3).collect::<Vec<_>>(),
        ["ext4", "from", &device]
    );
    assert_eq!(v["publications"][0]["target"], target.as_str());
    assert!(v["publications"][0]["mount"].as_str().unwrap().starts_with("ext4 from"), "{v}");
    assert!(v["usage"]["total_bytes"].as_u64().unwrap() > 16 << 20, "{v}");

    // The text form says the same for a person.
    let out = Command::new(BIN).args(["inspect", &id, "--root"]).arg(&s.root).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("staged_by: strata-csi (CSI)") && text.contains(&device), "{text}");

    // A publication the kernel no longer has is shown as such.
    nix::mount::umount2(target.as_str(), nix::mount::MntFlags::empty()).unwrap();
    let (_, v) = inspect(&s, &id);
    assert!(v["publications"][0]["mount"].as_str().unwrap().starts_with("NOT MOUNTED"), "{v}");
    client_ok(&s, &["unpublish", &id, "--target-path", &target]);
    client_ok(&s, &["unstage", &id, "--staging-path", &staging]);
    let (_, v) = inspect(&s, &id);
    assert_eq!((v["staged_by"].as_str(), v["usage"].as_str()), (Some("not staged"), Some("not staged")));
    assert_eq!(v["loop_devices"], serde_json::json!([]));
    assert_eq!(v["publications"], serde_json::json!([]));
    client_ok(&s, &["delete-volume", &id]);
    let (ok, v) = inspect(&s, &id);
    assert!(!ok && v["error"]["code"] == "NOT_FOUND", "{v}");
}

#[test]
fn inspect_tells_a_flexvolume_staging_from_a_csi_one() {
    require_root();
    let s = Server::start();
    let pod = s.kubelet.join("pods/p/volumes/strata~flex/pv-flexed");
    std::fs::create_dir_all(&pod).unwrap();
    let json = r#"{"kubernetes.io/pvOrVolumeName":"pv-flexed","kubernetes.io/readwrite":"rw","backend":"dir"}"#;
    let flex = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata-flex"))
            .args(args)
            .env("STRATA_FLEX_ROOT", &s.root)
            .env("STRATA_FLEX_KUBELET_DIR", &s.kubelet)
            .env("STRATA_FLEX_LOG", "off")
            .env_remove("STRATA_FLEX_CONFIG")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("Success"), "{out:?}");
    };
    flex(&["mount", pod.to_str().unwrap(), json]);
    let (ok, v) = inspect(&s, "pv-flexed");
    assert!(ok, "{v}");
    assert_eq!(v["staged_by"], "strata-flex (FlexVolume)");
    assert_eq!(v["staging"]["path"], s.root.join("staging/pv-flexed").to_str().unwrap());
    assert_eq!(v["publications"][0]["target"], pod.to_str().unwrap());
    flex(&["unmount", pod.to_str().unwrap()]);
    client_ok(&s, &["delete-volume", &format!("pv-flexed@{NODE}")]);
}
