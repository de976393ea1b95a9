//! A tiny eBPF assembler: the handful of instructions a device filter needs, encoded
//! as the kernel's `struct bpf_insn`, with forward jumps to labels resolved at the end.
//! Hand-assembling keeps Berth free of clang and of a compiled BPF object.

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

/// The registers a device filter uses: R0 the verdict, R1 the context, R2..R5 scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
}

/// Opcodes (class | operation | source), from include/uapi/linux/bpf{,_common}.h.
pub mod op {
    const LDX: u8 = 0x01;
    const ALU: u8 = 0x04;
    const JMP: u8 = 0x05;
    const MEM: u8 = 0x60;
    const W: u8 = 0x00;
    const K: u8 = 0x00;
    const X: u8 = 0x08;
    /// dst = *(u32 *)(src + off)
    pub const LDX_MEM_W: u8 = LDX | MEM | W;
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
    }

    #[test]
    fn forward_jumps_resolve_to_offsets() {
        let mut a = Asm::new();
        let end = a.label();
        a.jne(Reg::R2, 1, end); // 0
        a.jne_reg(Reg::R1, Reg::R3, end); // 1
        a.push(Insn::mov32(Reg::R0, 1)); // 2
        a.bind(end);
        a.push(Insn::exit()); // 3
        let p = a.finish().unwrap();
        assert_eq!((p[0].code, p[0].off), (op::JNE_K, 2));
        assert_eq!(
            (p[1].code, p[1].off, p[1].dst(), p[1].src()),
            (op::JNE_X, 1, 1, 3)
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
