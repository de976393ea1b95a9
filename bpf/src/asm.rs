//! A tiny eBPF assembler: the handful of instructions Berth's programs need (a cgroup
//! device filter, the tc fast path), encoded as the kernel's `struct bpf_insn`, with
//! forward jumps to labels resolved at the end. Hand-assembling keeps Berth free of clang
//! and of a compiled BPF object.

use std::os::fd::{AsRawFd, BorrowedFd};

/// One instruction, laid out as `struct bpf_insn` (8 bytes, little-endian host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src register in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// eBPF's registers: R0 the return value, R1 the context on entry and R1..R5 a
/// helper's arguments (clobbered by a call), R6..R9 kept across calls, R10 the
/// read-only frame pointer (the stack grows down from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

/// Helper function ids (`enum bpf_func_id`), for [`Insn::call`].
pub mod helper {
    /// `void *bpf_map_lookup_elem(map, key)`: the value, or NULL.
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `long bpf_redirect_peer(ifindex, flags)`: into the peer of a veth (tc ingress).
    pub const REDIRECT_PEER: i32 = 155;
}

/// `BPF_PSEUDO_MAP_FD`: the src of a LD_IMM64 whose imm is a map fd, which the kernel
/// turns into the map at load time.
pub const PSEUDO_MAP_FD: u8 = 1;

/// Opcodes (class | operation | source), from include/uapi/linux/bpf{,_common}.h.
pub mod op {
    const LD: u8 = 0x00;
    const LDX: u8 = 0x01;
    const ST: u8 = 0x02;
    const STX: u8 = 0x03;
    const ALU: u8 = 0x04;
    const JMP: u8 = 0x05;
    const ALU64: u8 = 0x07;
    const IMM: u8 = 0x00;
    const MEM: u8 = 0x60;
    const W: u8 = 0x00;
    const H: u8 = 0x08;
    const DW: u8 = 0x18;
    const K: u8 = 0x00;
    const X: u8 = 0x08;
    /// dst = *(u32 *)(src + off)
    pub const LDX_MEM_W: u8 = LDX | MEM | W;
    /// dst = *(u16 *)(src + off)
    pub const LDX_MEM_H: u8 = LDX | MEM | H;
    /// *(u32 *)(dst + off) = src
    pub const STX_MEM_W: u8 = STX | MEM | W;
    /// *(u16 *)(dst + off) = src
    pub const STX_MEM_H: u8 = STX | MEM | H;
    /// *(u16 *)(dst + off) = imm
    pub const ST_MEM_H: u8 = ST | MEM | H;
    /// dst = imm64 (two instructions, the second holding the upper half)
    pub const LD_IMM64: u8 = LD | IMM | DW;
    /// dst += imm
    pub const ADD64_K: u8 = ALU64 | K;
    /// dst = imm
    pub const MOV64_K: u8 = ALU64 | 0xb0 | K;
    /// dst = src
    pub const MOV64_X: u8 = ALU64 | 0xb0 | X;
    /// dst = (u32)dst & imm
    pub const AND32_K: u8 = ALU | 0x50 | K;
    /// dst = (u32)dst >> imm
    pub const RSH32_K: u8 = ALU | 0x70 | K;
    /// dst = (u32)imm
    pub const MOV32_K: u8 = ALU | 0xb0 | K;
    /// dst = (u32)src
    pub const MOV32_X: u8 = ALU | 0xb0 | X;
    /// if dst == (s64)imm goto +off
    pub const JEQ_K: u8 = JMP | 0x10 | K;
    /// if dst != (s64)imm goto +off
    pub const JNE_K: u8 = JMP | 0x50 | K;
    /// if dst != src goto +off
    pub const JNE_X: u8 = JMP | 0x50 | X;
    /// if dst > src (unsigned) goto +off
    pub const JGT_X: u8 = JMP | 0x20 | X;
    /// r0 = helper imm (r1..r5)
    pub const CALL: u8 = JMP | 0x80;
    /// return r0
    pub const EXIT: u8 = JMP | 0x90;
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src as u8) << 4 | dst as u8,
            off,
            imm,
        }
    }

    pub fn dst(&self) -> usize {
        usize::from(self.regs & 0x0f)
    }

    pub fn src(&self) -> usize {
        usize::from(self.regs >> 4)
    }

    pub fn ldx_w(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(op::LDX_MEM_W, dst, src, off, 0)
    }

    pub fn and32(dst: Reg, imm: i32) -> Insn {
        Insn::new(op::AND32_K, dst, Reg::R0, 0, imm)
    }

    pub fn rsh32(dst: Reg, imm: i32) -> Insn {
        Insn::new(op::RSH32_K, dst, Reg::R0, 0, imm)
    }

    pub fn mov32(dst: Reg, imm: i32) -> Insn {
        Insn::new(op::MOV32_K, dst, Reg::R0, 0, imm)
    }

    pub fn mov32_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(op::MOV32_X, dst, src, 0, 0)
    }

    pub fn exit() -> Insn {
        Insn::new(op::EXIT, Reg::R0, Reg::R0, 0, 0)
    }

    pub fn ldx_h(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(op::LDX_MEM_H, dst, src, off, 0)
    }

    pub fn stx_w(dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(op::STX_MEM_W, dst, src, off, 0)
    }

    pub fn stx_h(dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(op::STX_MEM_H, dst, src, off, 0)
    }

    pub fn st_h(dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(op::ST_MEM_H, dst, Reg::R0, off, imm)
    }

    pub fn add64(dst: Reg, imm: i32) -> Insn {
        Insn::new(op::ADD64_K, dst, Reg::R0, 0, imm)
    }

    pub fn mov64(dst: Reg, imm: i32) -> Insn {
        Insn::new(op::MOV64_K, dst, Reg::R0, 0, imm)
    }

    pub fn mov64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(op::MOV64_X, dst, src, 0, 0)
    }

    /// Calls helper `id` (see [`helper`]).
    pub fn call(id: i32) -> Insn {
        Insn::new(op::CALL, Reg::R0, Reg::R0, 0, id)
    }

    /// dst = the map behind `map` (a LD_IMM64 of the fd, marked [`PSEUDO_MAP_FD`]; the
    /// kernel resolves it when the program is loaded, so the fd need only live until
    /// then).
    pub fn ld_map_fd(dst: Reg, map: BorrowedFd<'_>) -> [Insn; 2] {
        [
            Insn {
                code: op::LD_IMM64,
                regs: PSEUDO_MAP_FD << 4 | dst as u8,
                off: 0,
                imm: map.as_raw_fd(),
            },
            // The upper 32 bits, zero for an fd.
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0,
            },
        ]
    }
}

/// A place in the program a jump goes to, bound later with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AsmError {
    #[error("jump to a label that was never placed (a bug in the program generator)")]
    Unbound,
    #[error("jump of {0} instructions does not fit eBPF's 16-bit offset")]
    TooFar(usize),
}

/// Builds a program; jumps name labels, [`Asm::finish`] turns them into offsets.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Label index -> instruction index it was bound to.
    targets: Vec<Option<usize>>,
    /// (jump instruction index, label) pairs to patch.
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    pub fn label(&mut self) -> Label {
        self.targets.push(None);
        Label(self.targets.len() - 1)
    }

    /// The next instruction pushed is where `l` points.
    pub fn bind(&mut self, l: Label) {
        self.targets[l.0] = Some(self.insns.len());
    }

    pub fn push(&mut self, i: Insn) {
        self.insns.push(i);
    }

    pub fn extend(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.insns.push(Insn::new(code, dst, src, 0, imm));
    }

    pub fn jne(&mut self, dst: Reg, imm: i32, to: Label) {
        self.jump(op::JNE_K, dst, Reg::R0, imm, to);
    }

    pub fn jne_reg(&mut self, dst: Reg, src: Reg, to: Label) {
        self.jump(op::JNE_X, dst, src, 0, to);
    }

    pub fn jeq(&mut self, dst: Reg, imm: i32, to: Label) {
        self.jump(op::JEQ_K, dst, Reg::R0, imm, to);
    }

    /// if dst > src (unsigned, 64 bits) goto `to`
    pub fn jgt_reg(&mut self, dst: Reg, src: Reg, to: Label) {
        self.jump(op::JGT_X, dst, src, 0, to);
    }

    /// Resolves every jump: offset = target - (jump + 1), as the kernel counts.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for (at, label) in &self.fixups {
            let target = self.targets[label.0].ok_or(AsmError::Unbound)?;
            let delta = target as i64 - (*at as i64 + 1);
            self.insns[*at].off = i16::try_from(delta).map_err(|_| AsmError::TooFar(target))?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_headers() {
        // Values as `bpftool prog dump xlated` / llvm-objdump show them.
        assert_eq!(
            Insn::ldx_w(Reg::R2, Reg::R1, 4),
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 4,
                imm: 0
            }
        );
        assert_eq!(Insn::and32(Reg::R2, 0xffff).code, 0x54);
        assert_eq!(Insn::rsh32(Reg::R3, 16).code, 0x74);
        assert_eq!(Insn::mov32(Reg::R0, 1).code, 0xb4);
        assert_eq!(Insn::mov32_reg(Reg::R1, Reg::R3).regs, 0x31);
        assert_eq!(Insn::exit().code, 0x95);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        // The fast path's additions.
        assert_eq!(Insn::ldx_h(Reg::R5, Reg::R2, 4).code, 0x69);
        assert_eq!(
            Insn::stx_w(Reg::R10, -8, Reg::R5),
            Insn {
                code: 0x63,
                regs: 0x5a,
                off: -8,
                imm: 0
            }
        );
        assert_eq!(Insn::stx_h(Reg::R10, -4, Reg::R5).code, 0x6b);
        assert_eq!(Insn::st_h(Reg::R10, -2, 0).regs, 0x0a);
        assert_eq!(Insn::st_h(Reg::R10, -2, 0).code, 0x6a);
        assert_eq!(Insn::add64(Reg::R4, 6).code, 0x07);
        assert_eq!(Insn::mov64(Reg::R0, 0).code, 0xb7);
        assert_eq!(Insn::mov64_reg(Reg::R2, Reg::R10).regs, 0xa2);
        assert_eq!(Insn::mov64_reg(Reg::R2, Reg::R10).code, 0xbf);
        assert_eq!(Insn::call(helper::REDIRECT_PEER).code, 0x85);
        assert_eq!(Insn::call(helper::REDIRECT_PEER).imm, 155);
    }

    #[test]
    fn a_map_load_is_two_instructions_naming_the_fd() {
        let f = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsFd;
        let [lo, hi] = Insn::ld_map_fd(Reg::R1, f.as_fd());
        assert_eq!((lo.code, lo.regs, lo.imm), (0x18, 0x11, f.as_raw_fd()));
        assert_eq!(
            hi,
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0
            }
        );
    }

    #[test]
    fn forward_jumps_resolve_to_offsets() {
        let mut a = Asm::new();
        let end = a.label();
        a.jne(Reg::R2, 1, end); // 0
        a.jne_reg(Reg::R1, Reg::R3, end); // 1
        a.jgt_reg(Reg::R4, Reg::R3, end); // 2
        a.push(Insn::mov32(Reg::R0, 1)); // 3
        a.bind(end);
        a.push(Insn::exit()); // 4
        let p = a.finish().unwrap();
        assert_eq!((p[0].code, p[0].off), (op::JNE_K, 3));
        assert_eq!(
            (p[1].code, p[1].off, p[1].dst(), p[1].src()),
            (op::JNE_X, 2, 1, 3)
        );
        assert_eq!(
            (p[2].code, p[2].off, p[2].dst(), p[2].src()),
            (0x2d, 1, 4, 3)
        );
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut a = Asm::new();
        let l = a.label();
        a.jeq(Reg::R1, 0, l);
        assert_eq!(a.finish(), Err(AsmError::Unbound));
    }
}
