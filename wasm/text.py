"""Human-readable dump of what the ``binary`` builder recorded (debugging aid).

Instruction lines use WebAssembly text-format syntax (Core Spec 2.0 §6.5:
``memarg`` as ``offset=``/``align=`` in bytes, ``v128.const i8x16 ...``,
floats as hex), indented by block depth; it is a dump, not a full WAT printer.
"""
from __future__ import annotations

from .binary import OPS, Function, Module


def _float(x: float) -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x.hex()


def _functype(params, results) -> str:
    s = f" (param {' '.join(map(str, params))})" if params else ""
    return s + (f" (result {' '.join(map(str, results))})" if results else "")


def format_instr(mnemonic: str, imms: tuple, module: Module | None = None) -> str:
    """One instruction in text-format syntax."""
    kind = OPS[mnemonic][1]
    if kind is None or kind == "bt" and imms[0] is None:
        return mnemonic
    if kind == "bt":
        t = imms[0]
        return mnemonic + (_functype(*t) if isinstance(t, tuple) else f" (result {t})")
    if kind in ("mem", "memlane"):
        offset, align = imms[:2]
        s = mnemonic + (f" offset={offset}" if offset else "")
        s += f" align={1 << align}" if align != OPS[mnemonic][2] else ""
        return s + (f" {imms[2]}" if kind == "memlane" else "")
    if kind == "func":
        ref = imms[0]
        if isinstance(ref, Function):
            ref = ref.name
        if isinstance(ref, str):
            return f"{mnemonic} ${ref}"
        return f"{mnemonic} {ref}"
    if kind == "labels":
        return f"{mnemonic} {' '.join(map(str, imms[0]))} {imms[1]}"
    if kind == "v128":
        return f"{mnemonic} i8x16 {' '.join(str(b) for b in imms[0])}"
    if kind == "shuffle":
        return f"{mnemonic} {' '.join(map(str, imms[0]))}"
    if kind in ("f32", "f64"):
        return f"{mnemonic} {_float(imms[0])}"
    return f"{mnemonic} {imms[0]}"


def dump_function(f: Function, indent: str = "  ") -> str:
    """``(func $name (export ..) (param ..) (result ..)``, locals, then instructions by depth."""
    head = f"(func ${f.name}" + (f' (export "{f.export}")' if f.export else "")
    lines = [head + _functype(f.params, f.results)]
    if f.locals:
        lines.append(f"{indent}(local {' '.join(map(str, f.locals))})")
    depth = 1
    for mnemonic, imms, _ in f.instrs:
        if mnemonic in ("end", "else"):
            depth -= 1
        lines.append(indent * depth + format_instr(mnemonic, imms, f.module))
        if mnemonic in ("block", "loop", "if", "else"):
            depth += 1
    lines.append(")")
    return "\n".join(lines)


def _memory(module: Module) -> str:
    lo, hi, shared = module.memory["pages"]
    return f"(memory {lo}" + (f" {hi}" if hi is not None else "") + (" shared" if shared else "") + ")"


def dump(module: Module) -> str:
    """Imports, memory, globals, data segment sizes and every function of ``module``."""
    lines = ["(module"]
    for i in module.imports:
        if i[0] == "func":
            p, r = module.types[i[3]]
            lines.append(f'  (import "{i[1]}" "{i[2]}" (func ${i[4]}{_functype(p, r)}))')
        else:
            lines.append(f'  (import "{i[1]}" "{i[2]}" {_memory(module)})')
    if module.memory is not None and "import" not in module.memory:
        lines.append(f"  {_memory(module)}")
    for k, (t, mut, init, gname) in enumerate(module.globals):
        ty = f"(mut {t})" if mut else str(t)
        lines.append(f"  (global {'$' + gname if gname else k} {ty} ({t}.const {init}))")
    for k, (off, data) in enumerate(module.datas):
        lines.append(f"  (data {k} {'passive' if off is None else f'(i32.const {off})'} ;; {len(data)} bytes)")
    for f in module.functions:
        lines.extend("  " + ln for ln in dump_function(f).splitlines())
    lines.append(")")
    return "\n".join(lines)
