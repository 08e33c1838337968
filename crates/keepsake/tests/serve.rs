//! `keepsake serve` with the CLI's `--network` mode (ic-agent, default verification:
//! root key fetched from the local network, certificates and query signatures checked)
//! against it: a 30 MB file and a JPEG with derivatives up and back identical, an
//! upload stopped part way resumed with only the missing chunks, Ctrl-C, and a restart
//! that finds everything.

mod common;

use common::random_file;
use common::serve::Serve;

#[test]
fn cli_uploads_resumes_and_reads_back_through_keepsake_serve() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join("state");
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    let big = dir.join("video.bin");
    random_file(&big, 30_000_000, 10);
    let photo = dir.join("photo.jpg");
    std::fs::write(&photo, keepsake::derive::sample_photo(2400, 1800, 3)).unwrap();

    let net = Serve::start(&state);
    // Stopped after 5 of 17 chunks, as if killed: the second run sends only the rest.
    let r = net.cli(dir, &["upload", big.to_str().unwrap()], &[("KEEPSAKE_STOP_AFTER_CHUNKS", "5")]);
    assert_eq!(r.code, 75, "{}\n{}", r.stdout, r.stderr);
    let up = net.ok(dir, &["upload", big.to_str().unwrap()]);
    let file = &up["files"][0]["original"];
    assert_eq!(file["resumed"], true, "{up}");
    let total = file["chunks_total"].as_u64().unwrap();
    assert_eq!(total, 17);
    assert_eq!(file["chunks_sent"].as_u64().unwrap(), total - 5, "{up}");
    let video_id = up["files"][0]["memory_id"].as_u64().unwrap();

    let up = net.ok(dir, &["upload", "--derivatives", photo.to_str().unwrap()]);
    let photo_id = up["files"][0]["memory_id"].as_u64().unwrap();
    let kinds: Vec<&str> = up["files"][0]["assets"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"Display") && kinds.contains(&"Thumbnail"), "{kinds:?}");
    let ls = net.ok(dir, &["ls"]);
    assert_eq!(ls["memories"].as_array().unwrap().len(), 2, "{ls}");

    let get = |net: &Serve, id: u64, asset: &str, out: &str| {
        net.ok(dir, &["get", &id.to_string(), "--asset", asset, "-o", dir.join(out).to_str().unwrap()]);
        std::fs::read(dir.join(out)).unwrap()
    };
    assert!(get(&net, video_id, "original", "v1.bin") == std::fs::read(&big).unwrap());
    assert_eq!(get(&net, photo_id, "original", "p1.jpg"), std::fs::read(&photo).unwrap());
    let display = get(&net, photo_id, "display", "d1.jpg");
    assert_eq!(image::load_from_memory(&display).unwrap().width(), 2048, "the display rendition is scaled down");

    // Ctrl-C, then a restart on the same folder finds everything.
    net.interrupt();
    let net = Serve::start(&state);
    assert!(get(&net, video_id, "original", "v2.bin") == std::fs::read(&big).unwrap());
    assert_eq!(net.ok(dir, &["ls"])["memories"].as_array().unwrap().len(), 2);
    net.interrupt();
}

/// The principal of a PEM identity file (as the CLI signs with it).
fn principal_of(pem: &std::path::Path) -> String {
    use ic_agent::Identity;
    ic_agent::identity::BasicIdentity::from_pem_file(pem).unwrap().sender().unwrap().to_text()
}

/// What `ls --json` shows of the memories, without what the canister assigns (ids,
/// times): title, kind and every asset's kind, size and SHA-256, sorted.
fn contents(ls: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = ls["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut assets: Vec<String> =
                m["assets"].as_array().unwrap().iter().map(|a| format!("{}:{}:{}", a["kind"], a["size"], a["sha256"])).collect();
            assets.sort();
            format!("{} {} {}", m["title"], m["kind"], assets.join(","))
        })
        .collect();
    out.sort();
    out
}

/// The operator commands over `--network` (ic-agent, signed requests, certified
/// answers) against `keepsake serve`: members invited, accepted by another identity and
/// removed; a link in the local gateway's form; export, rm, and the export imported
/// into another `serve` with the same contents.
#[test]
fn members_link_export_rm_and_import_run_through_keepsake_serve() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (bdir, x) = (dir.join("b"), dir.join("x"));
    std::fs::create_dir_all(&bdir).unwrap();
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    keepsake::identity::write_new_ed25519_pem(&dir.join("other.pem")).unwrap();
    std::fs::copy(dir.join("me.pem"), bdir.join("me.pem")).unwrap();
    let (me, other) = (principal_of(&dir.join("me.pem")), principal_of(&dir.join("other.pem")));
    std::fs::write(dir.join("photo.jpg"), keepsake::derive::sample_photo(900, 600, 5)).unwrap();
    random_file(&dir.join("note.bin"), 300_000, 11);

    // `me` controls the canister: `stats` (what rm and import report) is for controllers.
    let a = Serve::start_with(&dir.join("a"), &["--controller", &me]);
    let up = a.ok(dir, &["upload", "--derivatives", "photo.jpg"]);
    let photo = up["files"][0]["memory_id"].as_u64().unwrap().to_string();
    let cap = up["files"][0]["capsule_id"].as_u64().unwrap().to_string();
    let up = a.ok(dir, &["upload", "note.bin", "--capsule", &cap]);
    let note = up["files"][0]["memory_id"].as_u64().unwrap().to_string();

    // Members: an invitation, accepted by the other key's own signed call, then removed.
    let as_other = |args: &[&str]| a.cli_as(dir, "other.pem", args, &[]);
    let reader = serde_json::json!({ "principal": other, "role": "Reader" });
    let v = a.ok(dir, &["capsule", "members", &cap, "add", &other, "--role", "reader"]);
    assert!(v["members"]["invited"].as_array().unwrap().contains(&reader), "{v}");
    assert_ne!(as_other(&["get", &photo, "-o", "no.jpg"]).code, 0, "invited is not joined");
    let r = as_other(&["capsule", "accept", &cap]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = a.ok(dir, &["capsule", "members", &cap]);
    assert!(v["members"]["members"].as_array().unwrap().contains(&reader), "{v}");
    let r = as_other(&["get", &photo, "-o", "theirs.jpg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(dir.join("theirs.jpg")).unwrap(), std::fs::read(dir.join("photo.jpg")).unwrap());
    a.ok(dir, &["capsule", "members", &cap, "remove", &other]);
    let r = as_other(&["get", &photo, "-o", "gone.jpg"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("not allowed") || r.stderr.contains("not found"), "{}", r.stderr);

    // A link, as the local network's gateway would serve it.
    let l = a.ok(dir, &["link", &photo, "--asset", "thumbnail", "--ttl", "10m"])["link"].clone();
    let path = l["path"].as_str().unwrap();
    assert!(path.starts_with(&format!("/m/{photo}/thumbnail?token=")), "{l}");
    let port = url::Url::parse(&a.url).unwrap().port().unwrap();
    assert_eq!(l["url"].as_str().unwrap(), format!("http://{}.localhost:{port}{path}", a.canister));

    // Export, then rm (the blob's bytes are released to housekeeping).
    let e = a.ok(dir, &["export", x.to_str().unwrap()])["export"].clone();
    assert_eq!(e["memories"], 2, "{e}");
    assert_eq!(e["interrupted"], false, "{e}");
    let before = contents(&a.ok(dir, &["ls"]));
    assert_eq!(before.len(), 2, "{before:?}");
    let r = a.ok(dir, &["rm", &note])["removed"].clone();
    assert_eq!(r["removed"][0]["kind"], "Original", "{r}");
    assert_eq!(r["released_bytes"], 300_000, "{r}");
    assert_eq!(a.ok(dir, &["ls"])["memories"].as_array().unwrap().len(), 1);
    let r = a.cli(dir, &["get", &note, "-o", "note.back"], &[]);
    assert!(r.code != 0 && r.stderr.contains("not found"), "{}", r.stderr);

    // Imported into another network: the same memories, assets and bytes.
    let b = Serve::start_with(&dir.join("b-state"), &["--controller", &me]);
    let i = b.ok(&bdir, &["import", x.to_str().unwrap()]);
    assert_eq!(i["import"]["memories_imported"], 2, "{i}");
    assert_eq!(i["memories_added"], 2, "{i}");
    let ls = b.ok(&bdir, &["ls"]);
    assert_eq!(contents(&ls), before);
    let id = ls["memories"].as_array().unwrap().iter().find(|m| m["title"] == "note.bin").unwrap()["id"].to_string();
    b.ok(&bdir, &["get", &id, "-o", "note.back"]);
    assert!(std::fs::read(bdir.join("note.back")).unwrap() == std::fs::read(dir.join("note.bin")).unwrap());
    a.interrupt();
    b.interrupt();
}
