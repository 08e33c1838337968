//! `keepsake capsule create | list | members | accept | invitations | rotate-link-key`.

use std::process::ExitCode;

use backend::api::Capsule;
use candid::Principal;
use keepsake::links;
use keepsake::members::{self, Members};
use serde_json::json;

use crate::{connect, CapsuleCmd, Global, MembersCmd};

fn capsule_json(c: &Capsule) -> serde_json::Value {
    json!({ "id": c.id, "name": c.name, "role": c.my_role.map(|r| format!("{r:?}")), "bytes_used": c.bytes_used,
            "owners": c.owners.iter().map(Principal::to_text).collect::<Vec<_>>() })
}

pub async fn run(g: &Global, cmd: &CapsuleCmd) -> anyhow::Result<ExitCode> {
    let client = connect(g, false).await?;
    match cmd {
        CapsuleCmd::Create { name } => {
            let c = client.capsules_create(name).await?;
            client.checkpoint()?;
            if g.json {
                println!("{}", json!({ "ok": true, "capsule": capsule_json(&c) }));
            } else {
                println!("created capsule {} \"{}\"", c.id, c.name);
            }
        }
        CapsuleCmd::List => {
            let list = client.capsules_list().await?;
            if g.json {
                let v: Vec<_> = list.iter().map(capsule_json).collect();
                println!("{}", json!({ "ok": true, "capsules": v }));
            } else if list.is_empty() {
                println!("no capsules (upload creates one named \"default\")");
            } else {
                println!(
                    "{:>6}  {:<24} {:>8} {:>14}",
                    "id", "name", "role", "bytes used"
                );
                for c in &list {
                    let role = c
                        .my_role
                        .map(|r| format!("{r:?}"))
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:>6}  {:<24} {:>8} {:>14}",
                        c.id, c.name, role, c.bytes_used
                    );
                }
            }
        }
        CapsuleCmd::Members { capsule, action } => {
            let (done, m) = match action {
                None => (None, members::list(&client, *capsule).await?),
                Some(MembersCmd::Add { principal, role }) => {
                    let who = members::parse_principal(principal)?;
                    let role = members::parse_role(role)?;
                    let m = members::add(&client, *capsule, who, role).await?;
                    let role = format!("{role:?}").to_lowercase();
                    let what = if m.invited.iter().any(|x| x.principal == who) {
                        format!(
                            "invited {who} as {role} of capsule {capsule}; they join with `keepsake capsule accept {capsule}`"
                        )
                    } else {
                        format!("{who} is now {role} of capsule {capsule}")
                    };
                    (Some(what), m)
                }
                Some(MembersCmd::Remove { principal }) => {
                    let who = members::parse_principal(principal)?;
                    let m = members::remove(&client, *capsule, who).await?;
                    (
                        Some(format!("{who} is no longer a member of capsule {capsule}")),
                        m,
                    )
                }
            };
            client.checkpoint()?;
            print_members(g, done.as_deref(), &m);
        }
        CapsuleCmd::Accept { capsule } => {
            let m = members::accept(&client, *capsule).await?;
            client.checkpoint()?;
            let role = m.my_role.map(|r| format!("{r:?}").to_lowercase());
            let done = format!(
                "joined capsule {capsule} as {}",
                role.as_deref().unwrap_or("member")
            );
            print_members(g, Some(&done), &m);
        }
        CapsuleCmd::Invitations => {
            let list = client.capsules_invitations().await?;
            if g.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|i| json!({ "capsule_id": i.capsule_id, "name": i.capsule_name, "role": format!("{:?}", i.role) }))
                    .collect();
                println!("{}", json!({ "ok": true, "invitations": v }));
            } else if list.is_empty() {
                println!("no invitations");
            } else {
                for i in &list {
                    let role = format!("{:?}", i.role).to_lowercase();
                    println!(
                        "{:>6}  {:<24} {role:<7} (keepsake capsule accept {})",
                        i.capsule_id, i.capsule_name, i.capsule_id
                    );
                }
            }
        }
        CapsuleCmd::RotateLinkKey { capsule } => {
            let r = links::rotate_link_key(&client, *capsule).await?;
            client.checkpoint()?;
            if g.json {
                println!("{}", json!({ "ok": true, "rotated": r }));
            } else {
                println!(
                    "capsule {capsule}: link key version {}; every earlier link to its memories now answers 403",
                    r.key_version
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_members(g: &Global, done: Option<&str>, m: &Members) {
    if g.json {
        println!("{}", json!({ "ok": true, "members": m }));
        return;
    }
    if let Some(d) = done {
        println!("{d}");
    }
    let me = m
        .my_role
        .map(|r| format!("{r:?}").to_lowercase())
        .unwrap_or_else(|| "not a member".into());
    println!("capsule {} \"{}\" (you: {me})", m.capsule_id, m.name);
    for x in &m.members {
        println!(
            "  {:<7} {}",
            format!("{:?}", x.role).to_lowercase(),
            x.principal
        );
    }
    for x in &m.invited {
        println!(
            "  {:<7} {} (invited, not joined yet)",
            format!("{:?}", x.role).to_lowercase(),
            x.principal
        );
    }
}
