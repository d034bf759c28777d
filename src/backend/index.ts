/**
 * TensorFlow.js backend setup and the kernel/gradient override registry.
 *
 * Model code only calls tf ops (through ./ops.ts); which engine runs them, and which faster
 * implementations sit behind them, is decided here. `initBackend()` selects the engine and installs
 * every override in the registry.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { BlockdropError } from '../errors.js';
import { makeConv2DGradConfig } from './conv-grad.js';
import { makeWasmGatherKernel } from './wasm-gather.js';

export type BackendName = 'wasm' | 'cpu';

/** One replacement installed behind a tf op. */
export interface KernelOverride {
  /** Short id, e.g. `conv2d-grad`. */
  readonly id: string;
  /** The tfjs kernel whose kernel or gradient is replaced. */
  readonly kernelName: string;
  readonly description: string;
  install(): void;
  /** Restores what tfjs had before `install()`. */
  uninstall(): void;
}

function gradientOverride(id: string, kernelName: string, description: string,
  make: (original: tf.GradConfig | undefined) => tf.GradConfig): KernelOverride {
  let original: tf.GradConfig | undefined;
  let installed = false;
  return {
    id,
    kernelName,
    description,
    install() {
      if (installed) return;
      original = tf.getGradient(kernelName);
      tf.registerGradient(make(original));
      installed = true;
    },
    uninstall() {
      if (!installed) return;
      if (original) tf.registerGradient(original);
      else tf.unregisterGradient(kernelName);
      installed = false;
    },
  };
}

function kernelOverride(id: string, kernelName: string, backendName: string, description: string,
  make: (original: tf.KernelConfig) => tf.KernelConfig): KernelOverride {
  let original: tf.KernelConfig | undefined;
  return {
    id,
    kernelName,
    description,
    install() {
      if (original) return;
      const current = tf.getKernel(kernelName, backendName);
      if (!current) return; // backend not registered: nothing to replace
      original = current;
      tf.unregisterKernel(kernelName, backendName);
      tf.registerKernel(make(current));
    },
    uninstall() {
      if (!original) return;
      tf.unregisterKernel(kernelName, backendName);
      tf.registerKernel(original);
      original = undefined;
    },
  };
}

/** The registry. Every entry is installed by `initBackend()`. */
export const KERNEL_OVERRIDES: readonly KernelOverride[] = [
  gradientOverride(
    'conv2d-grad',
    'Conv2D',
    'Conv2D gradients as forward convolutions (wasm lacks Conv2DBackpropFilter; its backprop-input conv is slow)',
    makeConv2DGradConfig,
  ),
  kernelOverride(
    'wasm-gather-rows',
    'GatherV2',
    'wasm',
    'GatherV2 along axis 0 on wasm as row copies (the generic kernel is ~40× slower; used to run blocks on kept images only)',
    makeWasmGatherKernel,
  ),
];

let overridesInstalled = false;
let selected: BackendName | undefined;

export function installKernelOverrides(): void {
  for (const o of KERNEL_OVERRIDES) o.install();
  overridesInstalled = true;
}

/** Puts tfjs's own kernels/gradients back (tests use this to get reference values). */
export function uninstallKernelOverrides(): void {
  for (const o of KERNEL_OVERRIDES) o.uninstall();
  overridesInstalled = false;
}

export function kernelOverridesInstalled(): boolean {
  return overridesInstalled;
}

/**
 * Selects the compute engine and installs the overrides. Idempotent; may be called again with
 * another name to switch (tensors move between engines on first use).
 * - `wasm` (default): XNNPACK kernels, single-threaded in Node, ~35–70× faster than cpu.
 * - `cpu`: tfjs's pure-JS kernels; slow, used as the reference in tests.
 */
export async function initBackend(name: BackendName = 'wasm'): Promise<void> {
  if (name !== 'wasm' && name !== 'cpu') {
    throw new BlockdropError(`unknown compute backend '${String(name)}'; use 'wasm' or 'cpu'`);
  }
  if (!overridesInstalled) {
    // Silences tfjs's "install tfjs-node" banner, which cannot be acted on here.
    tf.env().set('PROD', true);
    installKernelOverrides();
  }
  // tf.getBackend() is only consulted once a backend was set: before that it would initialise one.
  if (selected === name && tf.getBackend() === name) return;
  const ok = await tf.setBackend(name);
  if (!ok) throw new BlockdropError(`could not initialise the TensorFlow.js '${name}' backend; try the 'cpu' backend`);
  await tf.ready();
  selected = name;
}

/** Name of the active engine (after `initBackend`). */
export function activeBackend(): string {
  return tf.getBackend();
}
