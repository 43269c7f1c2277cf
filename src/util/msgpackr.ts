// msgpackr for walstream's modules, always without its native accelerator (see no-native.ts): import
// Packr/Unpackr from here, never from 'msgpackr' directly, so the environment variable is set first.

import './no-native.js';

export { Packr, Unpackr, isNativeAccelerationEnabled } from 'msgpackr';
