//! A test interpreter for the instructions [`super::program`] emits, with eBPF's register
//! semantics (64-bit registers, 32-bit ALU ops zero-extending, compares on 64 bits
//! against a sign-extended immediate), so generated programs can be run without the
//! kernel. Unknown opcodes, out-of-bounds loads and running off the end panic: the
//! kernel's verifier would refuse such a program.

use super::rules::{Access, DevType};
use berth_bpf::asm::{op, Insn};

/// Runs `prog` on one device access and returns whether it is allowed (R0 != 0).
pub fn run(prog: &[Insn], typ: DevType, major: u32, minor: u32, access: Access) -> bool {
    let access_type = u32::from(access.0) << 16 | typ as u32;
    let mut ctx = [0u8; 12];
    ctx[0..4].copy_from_slice(&access_type.to_ne_bytes());
    ctx[4..8].copy_from_slice(&major.to_ne_bytes());
    ctx[8..12].copy_from_slice(&minor.to_ne_bytes());
    // R1 holds the context; model its address as 0.
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..prog.len() {
        let i = prog[pc];
        let (d, s) = (i.dst(), i.src());
        let imm = i.imm as i64 as u64;
        let jump = |taken: bool| {
            if taken {
                (pc as i64 + 1 + i64::from(i.off)) as usize
            } else {
                pc + 1
            }
        };
        pc = match i.code {
            op::LDX_MEM_W => {
                assert_eq!(r[s], 0, "loads only from the context");
                let at = usize::try_from(i.off).expect("non-negative offset");
                let b: [u8; 4] = ctx[at..at + 4].try_into().unwrap();
                r[d] = u64::from(u32::from_ne_bytes(b));
                pc + 1
            }
            op::AND32_K => {
                r[d] = u64::from(r[d] as u32 & i.imm as u32);
                pc + 1
            }
            op::RSH32_K => {
                r[d] = u64::from((r[d] as u32) >> i.imm);
                pc + 1
            }
            op::MOV32_K => {
                r[d] = u64::from(i.imm as u32);
                pc + 1
            }
            op::MOV32_X => {
                r[d] = u64::from(r[s] as u32);
                pc + 1
            }
            op::JEQ_K => jump(r[d] == imm),
            op::JNE_K => jump(r[d] != imm),
            op::JNE_X => jump(r[d] != r[s]),
            op::EXIT => return r[0] != 0,
            other => panic!("opcode {other:#x} not supported"),
        };
        assert!(i.off >= 0, "backward jump at {pc}");
        assert!(pc < prog.len(), "ran off the end");
    }
    panic!("no exit within {} steps", prog.len())
}
