//! Minimal binary rewriting before compilation.
//!
//! 1. Export the canister's internals the host needs. The IC system API reaches into a
//!    canister's memory 0, table 0 (callbacks are function-table indices) and, for
//!    rollback, its mutable globals (e.g. `__stack_pointer`). Rust canisters do not
//!    necessarily export these, so the host adds exports under reserved names.
//! 2. Pay the IC's weight of the operators wasmtime's fuel table cannot hold (a `u8`):
//!    [`crate::metering::NOPS_BEFORE_HEAVY_OPS`] `nop`s go in front of every
//!    `memory.grow`, `table.grow`, `data.drop` and `elem.drop` (a `nop` weighs 1 and
//!    compiles to nothing).
//!
//! Nothing else in the module changes.

use anyhow::{bail, ensure, Result};
use wasmtime::wasmparser::{
    BinaryReader, FunctionBody, GlobalSectionReader, ImportSectionReader, MemorySectionReader, Operator,
    TableSectionReader, TypeRef,
};

use crate::metering::NOPS_BEFORE_HEAVY_OPS;

pub(crate) const MEMORY_EXPORT: &str = "__ic_host_memory";
pub(crate) const TABLE_EXPORT: &str = "__ic_host_table";
pub(crate) const GLOBAL_EXPORT_PREFIX: &str = "__ic_host_global_";

const EXPORT_SECTION: u8 = 7;
const CODE_SECTION: u8 = 10;
const NOP: u8 = 0x01;

/// The module the host compiles: [`pad_heavy_ops`], then [`export_internals`].
pub(crate) fn rewrite(wasm: &[u8]) -> Result<Vec<u8>> {
    export_internals(&pad_heavy_ops(wasm)?)
}

struct Section<'a> {
    id: u8,
    /// Header + content, as found in the input.
    raw: &'a [u8],
    content: &'a [u8],
    content_offset: usize,
}

fn read_leb_u32(bytes: &[u8], pos: &mut usize) -> Result<u32> {
    let mut result: u64 = 0;
    let mut shift = 0;
    loop {
        let Some(&b) = bytes.get(*pos) else { bail!("truncated LEB128") };
        *pos += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        ensure!(shift < 35, "LEB128 too long");
    }
    u32::try_from(result).map_err(|_| anyhow::anyhow!("LEB128 overflow"))
}

fn write_leb_u32(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn split_sections(wasm: &[u8]) -> Result<Vec<Section<'_>>> {
    ensure!(wasm.len() >= 8 && wasm[0..4] == *b"\0asm", "not a wasm binary");
    ensure!(wasm[4..8] == [1, 0, 0, 0], "unsupported wasm version (components are not canisters)");
    let mut pos = 8;
    let mut sections = Vec::new();
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = read_leb_u32(wasm, &mut pos)? as usize;
        let end = pos.checked_add(size).filter(|&e| e <= wasm.len());
        let Some(end) = end else { bail!("section {id} extends past the end of the module") };
        sections.push(Section { id, raw: &wasm[start..end], content: &wasm[pos..end], content_offset: pos });
        pos = end;
    }
    Ok(sections)
}

/// Returns `wasm` with [`NOPS_BEFORE_HEAVY_OPS`] `nop`s in front of every operator the
/// IC weighs 300 (see [`crate::metering`]).
pub(crate) fn pad_heavy_ops(wasm: &[u8]) -> Result<Vec<u8>> {
    let sections = split_sections(wasm)?;
    let Some(code) = sections.iter().find(|s| s.id == CODE_SECTION) else { return Ok(wasm.to_vec()) };
    let mut pos = 0;
    let count = read_leb_u32(code.content, &mut pos)?;
    let mut body = Vec::with_capacity(code.content.len());
    write_leb_u32(&mut body, count);
    let mut padded = false;
    for _ in 0..count {
        let size = read_leb_u32(code.content, &mut pos)? as usize;
        let Some(end) = pos.checked_add(size).filter(|&e| e <= code.content.len()) else {
            bail!("a function body extends past the code section")
        };
        let func = &code.content[pos..end];
        let start = code.content_offset + pos;
        // Offsets (within `func`) of the operators to pad.
        let mut heavy = Vec::new();
        let mut ops = FunctionBody::new(BinaryReader::new(func, start)).get_operators_reader()?;
        while !ops.eof() {
            let (op, at) = ops.read_with_offset()?;
            if matches!(
                op,
                Operator::MemoryGrow { .. } | Operator::TableGrow { .. } | Operator::DataDrop { .. } | Operator::ElemDrop { .. }
            ) {
                heavy.push(at - start);
            }
        }
        if heavy.is_empty() {
            write_leb_u32(&mut body, size as u32);
            body.extend_from_slice(func);
        } else {
            padded = true;
            let mut out = Vec::with_capacity(func.len() + heavy.len() * NOPS_BEFORE_HEAVY_OPS);
            let mut last = 0;
            for at in heavy {
                out.extend_from_slice(&func[last..at]);
                out.extend(std::iter::repeat_n(NOP, NOPS_BEFORE_HEAVY_OPS));
                last = at;
            }
            out.extend_from_slice(&func[last..]);
            let len = u32::try_from(out.len()).map_err(|_| anyhow::anyhow!("function body too large"))?;
            write_leb_u32(&mut body, len);
            body.extend_from_slice(&out);
        }
        pos = end;
    }
    ensure!(pos == code.content.len(), "trailing bytes in the code section");
    if !padded {
        return Ok(wasm.to_vec());
    }
    let mut out = Vec::with_capacity(wasm.len() + body.len() - code.content.len() + 8);
    out.extend_from_slice(&wasm[..8]);
    for s in &sections {
        if s.id == CODE_SECTION {
            out.push(CODE_SECTION);
            let len = u32::try_from(body.len()).map_err(|_| anyhow::anyhow!("code section too large"))?;
            write_leb_u32(&mut out, len);
            out.extend_from_slice(&body);
        } else {
            out.extend_from_slice(s.raw);
        }
    }
    Ok(out)
}

/// Returns `wasm` with extra exports for memory 0, table 0 and every mutable global.
pub(crate) fn export_internals(wasm: &[u8]) -> Result<Vec<u8>> {
    let sections = split_sections(wasm)?;
    let (mut memories, mut tables) = (0u32, 0u32);
    let mut mutable_globals = Vec::new();
    let mut global_index = 0u32;
    for s in &sections {
        let reader = || BinaryReader::new(s.content, s.content_offset);
        match s.id {
            2 => {
                for import in ImportSectionReader::new(reader())?.into_imports() {
                    match import?.ty {
                        TypeRef::Memory(_) => memories += 1,
                        TypeRef::Table(_) => tables += 1,
                        TypeRef::Global(g) => {
                            if g.mutable {
                                mutable_globals.push(global_index);
                            }
                            global_index += 1;
                        }
                        _ => {}
                    }
                }
            }
            4 => tables += TableSectionReader::new(reader())?.count(),
            5 => memories += MemorySectionReader::new(reader())?.count(),
            6 => {
                for g in GlobalSectionReader::new(reader())? {
                    if g?.ty.mutable {
                        mutable_globals.push(global_index);
                    }
                    global_index += 1;
                }
            }
            _ => {}
        }
    }

    let mut extra: Vec<(String, u8, u32)> = Vec::new();
    if memories > 0 {
        extra.push((MEMORY_EXPORT.to_string(), 0x02, 0));
    }
    if tables > 0 {
        extra.push((TABLE_EXPORT.to_string(), 0x01, 0));
    }
    for g in mutable_globals {
        extra.push((format!("{GLOBAL_EXPORT_PREFIX}{g}"), 0x03, g));
    }
    if extra.is_empty() {
        return Ok(wasm.to_vec());
    }

    let build_export_section = |existing: Option<&[u8]>| -> Result<Vec<u8>> {
        let (count, entries) = match existing {
            Some(content) => {
                let mut pos = 0;
                let count = read_leb_u32(content, &mut pos)?;
                (count, &content[pos..])
            }
            None => (0, &[][..]),
        };
        let mut body = Vec::new();
        let total = count
            .checked_add(extra.len() as u32)
            .ok_or_else(|| anyhow::anyhow!("too many exports"))?;
        write_leb_u32(&mut body, total);
        body.extend_from_slice(entries);
        for (name, kind, index) in &extra {
            write_leb_u32(&mut body, name.len() as u32);
            body.extend_from_slice(name.as_bytes());
            body.push(*kind);
            write_leb_u32(&mut body, *index);
        }
        let mut section = vec![EXPORT_SECTION];
        write_leb_u32(&mut section, body.len() as u32);
        section.extend_from_slice(&body);
        Ok(section)
    };

    let mut out = Vec::with_capacity(wasm.len() + 256);
    out.extend_from_slice(&wasm[..8]);
    let has_exports = sections.iter().any(|s| s.id == EXPORT_SECTION);
    let mut inserted = false;
    for s in &sections {
        if s.id == EXPORT_SECTION {
            out.extend_from_slice(&build_export_section(Some(s.content))?);
            continue;
        }
        // Sections that must come after the export section: start, elem, datacount, code, data.
        if !has_exports && !inserted && matches!(s.id, 8..=12) {
            out.extend_from_slice(&build_export_section(None)?);
            inserted = true;
        }
        out.extend_from_slice(s.raw);
    }
    if !has_exports && !inserted {
        out.extend_from_slice(&build_export_section(None)?);
    }
    Ok(out)
}
