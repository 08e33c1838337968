//! Counting like the IC: what every Wasm operator, system call and dirtied stable page
//! costs, and the per-message limits the replica enforces.
//!
//! The figures are the IC replica's (dfinity/ic, read in 2026):
//! - Wasm operators: `rs/embedders/src/wasm_utils/instrumentation.rs`,
//!   `instruction_to_cost` (wasm32 weights). The replica instruments the module: every
//!   basic block subtracts the sum of its operators' weights, every function entry adds
//!   1, and bulk memory operators (`memory.copy/fill/init`, `table.copy/fill/init`)
//!   subtract their length operand at run time. Here wasmtime's per-operator fuel table
//!   ([`ic_operator_cost`]) carries the same weights: wasmtime also charges 1 per function
//!   entry and, per [`wasmtime::VariableOperatorCost`], 1 per byte or element of bulk
//!   operators. One weight does not fit: wasmtime's table holds a `u8`, and
//!   `memory.grow`, `table.grow`, `data.drop` and `elem.drop` weigh 300 on the IC. They
//!   are set to 255 and the host inserts [`NOPS_BEFORE_HEAVY_OPS`] `nop`s (weight 1
//!   each, no code) in front of each of them when it loads a module (`rewrite.rs`).
//! - System calls: `rs/embedders/src/wasmtime_embedder/system_api_complexity.rs`
//!   (`overhead`, `overhead_native`) and the charges in
//!   `rs/embedders/src/wasmtime_embedder/linker.rs`: a fixed overhead plus one
//!   instruction per byte copied; 50 per byte for data that leaves the canister
//!   (`msg_reply_data_append`, `msg_reject`, `call_data_append`); logging charges for
//!   `debug_print` and `trap`. Stable memory is Wasm-native on the IC
//!   (`rs/embedders/src/wasm_utils/system_api_replacements.rs`): `stable64_read/write`
//!   cost 20 + length, `stable64_grow` 100, `stable64_size` nothing beyond its `call`.
//! - 1,000 instructions per 4 KiB stable page a message dirties for the first time
//!   (`rs/config/src/subnet_config.rs`, `DEFAULT_DIRTY_PAGE_OVERHEAD`), charged in the
//!   write that dirties it, also in queries.
//! - Per-message limits on dirtied and accessed stable pages
//!   (`rs/config/src/embedders.rs`): 2 GiB for updates, 8 GiB for install and upgrade,
//!   1 GiB for queries; and the cost of compiling a module
//!   (`DEFAULT_COST_TO_COMPILE_WASM_INSTRUCTION`: 6,000 per instruction of the
//!   instrumented module), counted against the install/upgrade message.
//!
//! What is not modelled: 64-bit memories (the IC weighs their loads and stores 2),
//! the canister log's remaining room (logging is charged as if the 4 KiB log had room),
//! and the basic-block granularity of the IC's counter (a trap in the middle of a
//! block is charged the whole block on the IC, only what ran here).

use wasmtime::wasmparser::Operator;
use wasmtime::OperatorCost;

/// Instructions per byte copied between the canister and the system.
pub const PER_BYTE: u64 = 1;
/// Instructions per byte of data leaving the canister: a reply, a reject message, the
/// argument of an outgoing call (`BYTE_TRANSMISSION_COST_FACTOR`).
pub const PER_BYTE_TRANSMITTED: u64 = 50;
/// Instructions per 4 KiB stable page a message dirties for the first time.
pub const DIRTY_PAGE_OVERHEAD: u64 = 1_000;
/// Instructions charged per instruction of a module compiled at install or upgrade.
pub const COMPILE_COST_PER_INSTRUCTION: u64 = 6_000;
/// The IC's weight of `memory.grow`, `table.grow`, `data.drop` and `elem.drop`.
pub const HEAVY_OP_COST: u64 = 300;
/// What wasmtime's table can hold of [`HEAVY_OP_COST`]; the rest is paid by `nop`s.
const HEAVY_OP_TABLE_COST: u8 = 255;
/// `nop`s inserted in front of each heavy operator (weight 1 each).
pub const NOPS_BEFORE_HEAVY_OPS: usize = (HEAVY_OP_COST - HEAVY_OP_TABLE_COST as u64) as usize;
/// The canister log's capacity (bytes) assumed by the logging charge.
const LOG_CAPACITY: u64 = 4 * 1024;

/// 4 KiB pages of stable memory one message may dirty, and access, by kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Updates, timers, replicated callbacks.
    pub message: u64,
    /// `canister_init`, `canister_pre_upgrade`, `canister_post_upgrade`.
    pub upgrade: u64,
    /// Queries (replicated or not) and `canister_inspect_message`.
    pub query: u64,
}

const GIB_PAGES: u64 = 1024 * 1024 * 1024 / 4096;
/// The IC's limits on dirtied stable pages per message (2 GiB / 8 GiB / 1 GiB).
pub const DIRTY_PAGE_LIMITS: PageLimits = PageLimits { message: 2 * GIB_PAGES, upgrade: 8 * GIB_PAGES, query: GIB_PAGES };
/// The IC's limits on accessed stable pages per message (the same sizes).
pub const ACCESSED_PAGE_LIMITS: PageLimits = DIRTY_PAGE_LIMITS;

impl PageLimits {
    /// The limit that applies to a message of `kind` (as the replica's `get_page_limit`).
    pub fn for_kind(&self, kind: crate::MessageKind) -> u64 {
        use crate::MessageKind as K;
        match kind {
            K::Init | K::PreUpgrade | K::PostUpgrade => self.upgrade,
            K::Query | K::ReplicatedQuery | K::InspectMessage => self.query,
            K::Update | K::GlobalTimer | K::ReplyCallback | K::RejectCallback | K::Cleanup => self.message,
        }
    }
}

/// wasmtime's fuel table with the IC's weights (see the module documentation).
pub fn ic_operator_cost() -> OperatorCost {
    let mut c = OperatorCost::new();
    // wasmtime's defaults differ from the IC's for these (0 there, 1 on the IC); blocks,
    // loops, `else` and `end` cost 0 in both; everything not named below costs 1 in both.
    macro_rules! set {
        ($($cost:expr => [$($op:ident),* $(,)?];)*) => { $( $( c.$op = $cost; )* )* };
    }
    set! {
        1 => [Nop, Drop, Unreachable, Return];
        10 => [I32DivS, I32DivU, I32RemS, I32RemU, I64DivS, I64DivU, I64RemS, I64RemU];
        2 => [F32Add, F32Sub, F32Mul, F32Ceil, F32Floor, F32Trunc, F32Nearest,
              F64Add, F64Sub, F64Mul, F64Ceil, F64Floor, F64Trunc, F64Nearest, F32Copysign];
        3 => [F32Div, F64Copysign];
        5 => [F64Div, F32Sqrt];
        18 => [F32Min, F32Max, F64Min, F64Max];
        8 => [F64Sqrt];
        3 => [F32Eq, F32Ne, F32Lt, F32Gt, F32Le, F32Ge, F64Eq, F64Ne, F64Lt, F64Gt, F64Le, F64Ge];
        3 => [F32ConvertI32S, F64ConvertI64S, F32ConvertI64S, F64ConvertI32S];
        16 => [F64ConvertI32U, F32ConvertI64U, F32ConvertI32U, F64ConvertI64U];
        20 => [I64TruncSatF32S, I64TruncSatF32U, I64TruncSatF64S, I64TruncSatF64U,
               I32TruncSatF32S, I32TruncSatF32U, I32TruncSatF64S, I32TruncSatF64U,
               I32TruncF32S, I32TruncF32U, I32TruncF64S, I32TruncF64U,
               I64TruncF32S, I64TruncF32U, I64TruncF64S, I64TruncF64U];
        2 => [GlobalGet, GlobalSet];
        5 => [TableGet, TableSet];
        HEAVY_OP_TABLE_COST => [MemoryGrow, TableGrow, DataDrop, ElemDrop];
        20 => [MemorySize];
        100 => [TableSize];
        100 => [MemoryFill, MemoryCopy, TableFill, TableCopy, MemoryInit, TableInit];
        5 => [Call];
        10 => [CallIndirect];
        3 => [ReturnCall];
        60 => [ReturnCallIndirect];
        2 => [If, Br, BrIf, BrTable];
        5 => [RefIsNull];
        130 => [RefFunc];
        // SIMD (the IC's table; the rest cost 1).
        3 => [I8x16Shuffle, I8x16Popcnt, I8x16Shl, I8x16ShrS, I32x4ExtAddPairwiseI16x8U, I64x2ShrS,
              I32x4TruncSatF64x2UZero];
        2 => [I8x16LtU, I8x16GtU, I16x8LtU, I16x8GtU, I32x4LtU, I32x4GtU, I8x16ShrU,
              I16x8ExtAddPairwiseI8x16U, I16x8Shl, I16x8ShrS, I16x8ShrU,
              I16x8ExtMulHighI8x16S, I16x8ExtMulHighI8x16U, I32x4Shl, I32x4ShrS, I32x4ShrU, I32x4Mul,
              I32x4ExtMulLowI16x8S, I32x4ExtMulHighI16x8S, I32x4ExtMulLowI16x8U, I32x4ExtMulHighI16x8U,
              I64x2Shl, I64x2ShrU,
              F32x4Ceil, F32x4Floor, F32x4Trunc, F32x4Nearest, F32x4Abs, F32x4Neg, F32x4Add, F32x4Sub,
              F32x4Mul, F64x2Ceil, F64x2Floor, F64x2Trunc, F64x2Nearest, F64x2Abs, F64x2Neg, F64x2Add,
              F64x2Sub, F64x2Mul, I32x4TruncSatF32x4S, I32x4TruncSatF64x2SZero];
        4 => [I64x2Mul, F32x4Min, F32x4Max, F64x2Min, I32x4TruncSatF32x4U, F32x4ConvertI32x4U];
        5 => [F32x4Sqrt, F64x2Max];
        10 => [F32x4Div];
        12 => [F64x2Div];
        14 => [F64x2Sqrt];
    }
    // Bulk operators: their length operand, one instruction per byte or element (the
    // IC's dynamic cost); `memory.grow` nothing per page.
    c.variable.memory_copy_per_byte = 1;
    c.variable.memory_fill_per_byte = 1;
    c.variable.memory_init_per_byte = 1;
    c.variable.memory_grow_per_page = 0;
    c.variable.table_copy_per_element = 1;
    c.variable.table_fill_per_element = 1;
    c.variable.table_init_per_element = 1;
    c
}

/// The IC's weight of one operator (what [`ic_operator_cost`] plus the inserted `nop`s
/// charge for it; bulk operators: the static part only).
pub fn operator_weight(table: &OperatorCost, op: &Operator<'_>) -> u64 {
    match op {
        Operator::MemoryGrow { .. } | Operator::TableGrow { .. } | Operator::DataDrop { .. } | Operator::ElemDrop { .. } => {
            HEAVY_OP_COST
        }
        _ => table.cost(op).max(0) as u64,
    }
}

/// Fixed overhead of a call to `ic0.<api>`, in instructions.
pub fn overhead(api: &str) -> u64 {
    match api {
        // Wasm-native stable memory: read/write 20 + length, grow 100, size free.
        "stable_read" | "stable_write" | "stable64_read" | "stable64_write" => 20,
        "stable_grow" | "stable64_grow" => 100,
        "stable_size" | "stable64_size" => 0,
        "performance_counter" => 200,
        "debug_print" => 100,
        "is_controller" => 1_000,
        "call_new" => 1_500,
        "call_perform" => 5_000,
        "cost_http_request_v2" => 10_000,
        // Not charged on the IC.
        "mint_cycles128" => 0,
        // Every other call: 500.
        _ => 500,
    }
}

/// Instructions per byte for `ic0.<api>` (data leaving the canister costs more).
pub fn per_byte(api: &str) -> u64 {
    match api {
        "msg_reply_data_append" | "msg_reject" | "call_data_append" => PER_BYTE_TRANSMITTED,
        _ => PER_BYTE,
    }
}

/// Instructions charged for one call to `ic0.<api>` that copies `bytes` bytes
/// (`debug_print` and `trap`: the length of their text, logging included).
pub fn cost(api: &str, bytes: u64) -> u64 {
    let variable = match api {
        // The canister log keeps the text (twice its size: add + evict) and ships it to
        // the replica (50 per byte); debug output itself is off on application subnets.
        "debug_print" => logging_bytes(bytes),
        "trap" => bytes.saturating_add(logging_bytes(bytes)),
        _ => bytes.saturating_mul(per_byte(api)),
    };
    overhead(api).saturating_add(variable)
}

fn logging_bytes(len: u64) -> u64 {
    let kept = len.min(LOG_CAPACITY);
    2 * kept + PER_BYTE_TRANSMITTED * kept
}

/// The instructions the IC charges for compiling `wasm` at install or upgrade:
/// [`COMPILE_COST_PER_INSTRUCTION`] per instruction of the module the IC instruments.
/// The count here is the module's own operators plus the metering code the replica
/// injects (per basic block, per bulk operator, per `memory.grow`) plus two per global;
/// the replica's few helper functions (a few hundred operators) are left out.
pub fn compilation_cost(wasm: &[u8]) -> anyhow::Result<u64> {
    Ok(instrumented_instruction_count(wasm)?.saturating_mul(COMPILE_COST_PER_INSTRUCTION))
}

/// See [`compilation_cost`].
pub fn instrumented_instruction_count(wasm: &[u8]) -> anyhow::Result<u64> {
    use wasmtime::wasmparser::{Parser, Payload};
    let table = ic_operator_cost();
    let mut count = 0u64;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::GlobalSection(globals) => count += 2 * u64::from(globals.count()),
            Payload::CodeSectionEntry(body) => {
                let mut ops = Vec::new();
                let mut reader = body.get_operators_reader()?;
                while !reader.eof() {
                    ops.push(reader.read()?);
                }
                count += instrumented_body_len(&table, &ops);
            }
            _ => {}
        }
    }
    // The counter of instructions and the two stable page counters the IC adds.
    Ok(count + 3 * 2)
}

/// Operators of one function body after the IC's metering is injected.
fn instrumented_body_len(table: &OperatorCost, ops: &[Operator<'_>]) -> u64 {
    // Static charge: `global.get; i64.const; i64.sub; global.set` (4), and at the start
    // of a function or loop body also the check `global.get; i64.const; i64.lt_s; if;
    // call; end` (6). Blocks of weight 0 that are not re-entrant get nothing. Bulk
    // operators: `i64.extend_i32_u; call; i32.wrap_i64` (3). `memory.grow`:
    // `local.tee; ...; local.get; call` (3).
    const STATIC: u64 = 4;
    const REENTRANT: u64 = 4 + 6;
    const DYNAMIC: u64 = 3;
    const GROW: u64 = 3;
    let mut injected = 0u64;
    let (mut reentrant, mut cost) = (true, 1u64);
    let close = |reentrant: bool, cost: u64, injected: &mut u64| {
        if reentrant {
            *injected += REENTRANT;
        } else if cost > 0 {
            *injected += STATIC;
        }
    };
    for op in ops {
        cost += operator_weight(table, op);
        match op {
            Operator::Loop { .. } => {
                close(reentrant, cost, &mut injected);
                (reentrant, cost) = (true, 0);
            }
            Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return
            | Operator::Unreachable
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. } => {
                close(reentrant, cost, &mut injected);
                (reentrant, cost) = (false, 0);
            }
            Operator::MemoryFill { .. }
            | Operator::MemoryCopy { .. }
            | Operator::TableCopy { .. }
            | Operator::TableFill { .. }
            | Operator::MemoryInit { .. }
            | Operator::TableInit { .. } => injected += DYNAMIC,
            Operator::MemoryGrow { .. } => injected += GROW,
            _ => {}
        }
    }
    ops.len() as u64 + injected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_calls_cost_overhead_plus_bytes() {
        assert_eq!(cost("msg_arg_data_copy", 1_000), 1_500);
        assert_eq!(cost("stable64_write", 4_096), 4_116);
        assert_eq!(cost("msg_reply_data_append", 1_000), 500 + 50_000);
        assert_eq!(cost("stable64_size", 0), 0);
        assert_eq!(cost("trap", 10), 500 + 10 + 520);
    }

    #[test]
    fn the_table_carries_the_ic_weights() {
        let t = ic_operator_cost();
        assert_eq!(t.cost(&Operator::I64DivU), 10);
        assert_eq!(t.cost(&Operator::Call { function_index: 0 }), 5);
        assert_eq!(t.cost(&Operator::BrIf { relative_depth: 0 }), 2);
        assert_eq!(t.cost(&Operator::I32Add), 1);
        assert_eq!(t.cost(&Operator::End), 0);
        assert_eq!(t.cost(&Operator::Drop), 1);
        assert_eq!(t.cost(&Operator::I64x2Mul), 4);
        assert_eq!(operator_weight(&t, &Operator::MemoryGrow { mem: 0 }), 300);
        assert_eq!(u64::from(HEAVY_OP_TABLE_COST) + NOPS_BEFORE_HEAVY_OPS as u64, HEAVY_OP_COST);
    }
}
