/**
 * Reads what the dynamic loader will need from an ELF executable: its machine, its interpreter
 * (PT_INTERP, e.g. /lib/ld-musl-x86_64.so.1) and its DT_NEEDED libraries. The build uses it to prove
 * a musl binary is one (a glibc runtime picked by mistake still "builds"), and the tests to say
 * exactly why a musl binary cannot start on a machine without a musl C++ runtime.
 * Only 64-bit little-endian ELF, which is every Linux target we ship.
 */
import { closeSync, openSync, readSync } from "node:fs";

export interface ElfInfo {
  machine: "x86_64" | "aarch64" | `unknown(${number})`;
  interpreter: string | null;
  needed: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

function readAt(fd: number, offset: number, length: number, exact = true): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, offset);
  if (exact && n !== length) throw new Error(`short read at ${offset}`);
  return buf.subarray(0, n);
}

/** Throws when the file is not a 64-bit little-endian ELF. */
export function readElfInfo(path: string): ElfInfo {
  const fd = openSync(path, "r");
  try {
    const header = readAt(fd, 0, 64);
    if (header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
    if (header[4] !== 2 || header[5] !== 1) throw new Error(`${path} is not a 64-bit little-endian ELF file`);
    const machineCode = header.readUInt16LE(18);
    const machine = machineCode === 62 ? "x86_64" : machineCode === 183 ? "aarch64" : (`unknown(${machineCode})` as const);
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = readAt(fd, phoff, phentsize * phnum);
    const loads: { vaddr: number; offset: number; filesz: number }[] = [];
    let interpreter: string | null = null;
    let dynamic: { offset: number; size: number } | null = null;
    for (let i = 0; i < phnum; i++) {
      const ph = table.subarray(i * phentsize, (i + 1) * phentsize);
      const type = ph.readUInt32LE(0);
      const offset = Number(ph.readBigUInt64LE(8));
      const vaddr = Number(ph.readBigUInt64LE(16));
      const filesz = Number(ph.readBigUInt64LE(32));
      if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
      else if (type === PT_INTERP) interpreter = readAt(fd, offset, filesz).toString("latin1").replace(/\0+$/, "");
      else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
    }
    const needed: string[] = [];
    if (dynamic) {
      const entries = readAt(fd, dynamic.offset, dynamic.size);
      const neededOffsets: bigint[] = [];
      let strtabAddr: bigint | null = null;
      for (let at = 0; at + 16 <= entries.length; at += 16) {
        const tag = entries.readBigInt64LE(at);
        const value = entries.readBigUInt64LE(at + 8);
        if (tag === 0n) break;
        if (tag === DT_NEEDED) neededOffsets.push(value);
        else if (tag === DT_STRTAB) strtabAddr = value;
      }
      if (strtabAddr !== null) {
        // DT_STRTAB is a virtual address: find the loaded segment that holds it to get a file offset.
        const addr = Number(strtabAddr);
        const seg = loads.find((l) => addr >= l.vaddr && addr < l.vaddr + l.filesz);
        if (!seg) throw new Error(`${path}: string table outside every loaded segment`);
        const strtab = seg.offset + (addr - seg.vaddr);
        for (const off of neededOffsets) {
          const chunk = readAt(fd, strtab + Number(off), 256, false);
          needed.push(chunk.toString("latin1", 0, chunk.indexOf(0)));
        }
      }
    }
    return { machine, interpreter, needed };
  } finally {
    closeSync(fd);
  }
}
