//! `keepsake export` and `keepsake import`: one progress bar, a summary, exit code 75
//! when stopped part way (run the same command again to continue).

use std::path::Path;
use std::process::ExitCode;

use keepsake::export::{self, ExportOptions};
use keepsake::import::{self, ImportOptions};
use keepsake::ops::ProgressFactory;
use keepsake::upload::UploadOptions;
use serde_json::json;

use super::bytes;
use crate::{connect, stop_after_from_env, Bars, Global, EXIT_INTERRUPTED};

fn exit(interrupted: bool) -> ExitCode {
    if interrupted {
        eprintln!("keepsake: stopped part way; run the same command again to continue");
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn export(g: &Global, dir: &Path, capsule: Option<u64>) -> anyhow::Result<ExitCode> {
    let client = connect(g, false).await?;
    let opts = ExportOptions {
        capsule,
        in_flight: g.jobs.max(1),
        stop_after: stop_after_from_env()?,
    };
    let bar = Bars::new(g).for_file("export");
    let r = export::export(&client, dir, &opts, &*bar).await;
    drop(bar);
    let r = r?;
    if g.json {
        println!("{}", json!({ "ok": !r.interrupted, "export": r }));
    } else {
        println!(
            "exported {} of {} memories ({} capsule(s)) into {}: {} files downloaded ({}), {} already there; every file verified (SHA-256)",
            r.memories_done,
            r.memories,
            r.capsules,
            r.dir,
            r.files_downloaded,
            bytes(r.bytes_read),
            r.files_skipped
        );
    }
    Ok(exit(r.interrupted))
}

pub async fn import(
    g: &Global,
    dir: &Path,
    capsule: Option<u64>,
    chunk_size: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let client = connect(g, false).await?;
    let opts = ImportOptions {
        capsule,
        upload: UploadOptions {
            in_flight: g.jobs.max(1),
            chunk_size,
            stop_after: stop_after_from_env()?,
        },
    };
    let bar = Bars::new(g).for_file("import");
    let r = import::import(&client, dir, &opts, &*bar).await;
    drop(bar);
    // Whatever happened, the embedded canister state reflects every call made.
    client.checkpoint()?;
    let r = r?;
    if g.json {
        println!(
            "{}",
            json!({ "ok": !r.interrupted, "import": r, "memories_added": r.memories_added() })
        );
    } else {
        for c in &r.capsules {
            let how = if c.created { "created" } else { "existing" };
            println!(
                "{} → capsule {} \"{}\" ({how})",
                c.folder, c.capsule_id, c.name
            );
        }
        let added = r
            .memories_added()
            .map(|n| format!("; the canister has {n:+} memories"))
            .unwrap_or_default();
        println!(
            "imported {} of {} memories ({} already there): {} blobs uploaded ({} sent), {} already stored{added}",
            r.memories_imported + r.memories_already_there,
            r.memories,
            r.memories_already_there,
            r.blobs_uploaded,
            bytes(r.bytes_sent),
            r.blobs_already_stored
        );
    }
    Ok(exit(r.interrupted))
}
