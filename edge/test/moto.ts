// Node side: start the moto launcher (repository .venv Python) and hand its endpoints to the Worker tests.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";
import type { MotoInfo } from "./moto-info";

export type { MotoInfo };


const here = path.dirname(fileURLToPath(import.meta.url));
const python = process.env.PYTHON ?? path.resolve(here, "../../.venv/bin/python");

export async function startMoto(): Promise<MotoInfo> {
  const child = spawn(python, [path.join(here, "moto_launcher.py")], { stdio: ["pipe", "pipe", "inherit"] });
  process.on("exit", () => child.kill());
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<MotoInfo>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`moto launcher exited with ${code} (is .venv installed? run make install)`)));
    lines.once("line", (line) => resolve(JSON.parse(line) as MotoInfo));
  });
  // The launcher must not keep vitest alive: when this process exits, its stdin closes and it stops.
  lines.close();
  child.unref();
  for (const stream of [child.stdin, child.stdout]) (stream as unknown as { unref?: () => void })?.unref?.();
  return info;
}
