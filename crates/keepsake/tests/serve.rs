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
