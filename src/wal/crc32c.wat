;; CRC-32C kernel of src/wal/crc32c.ts (reflected polynomial 0x82F63B78), WebAssembly with SIMD and
;; bulk memory. crc32c.ts embeds the binary of this file (CRC32C_WASM_BASE64), made with WABT's wat2wasm:
;;   npx --yes wabt@1.0.39 wat2wasm src/wal/crc32c.wat --output=- | base64 -w 100
;; (no debug names: comments and labels leave no trace in the binary). Change this file and that
;; string together; test/crc32c.test.ts checks the kernel against a bitwise reference.
;;
;; Memory layout, shared with crc32c.ts: [0, 16384) slicing-by-16 tables T (crc32c.ts writes them);
;; [DATA_BASE - 5312, DATA_BASE) the quotient history read behind the stream; the stream at
;; DATA_BASE = 21696 (64-aligned), room for 65536 + 5275 + 16 bytes.
;;
;; Sparse multiples of P, exponents in bytes (see crc32c.ts): fold1 divides by
;; M1 = x^5275 + x^4508 + x^2751 + 1 (offsets 5275 - e: 767, 2524, 5275), fold2 by
;; M2 = x^290 + x^136 + x^113 + x^107 + x^32 + 1 (offsets 154, 177, 183, 258, 290); $tab finishes
;; the remainder with slicing-by-16. Inputs of 16384 bytes or more (or continuing chunks) take fold1.

(module
  (memory (export "mem") 2)

  ;; Slicing-by-16 over [p, end), then byte at a time.
  (func $tab (param $crc i32) (param $p i32) (param $end i32) (result i32) (local $a i32)
    block $done loop $next
      local.get $p i32.const 16 i32.add local.get $end i32.gt_u br_if $done
      local.get $crc local.get $p i32.load i32.xor local.set $a
      local.get $a i32.const 255 i32.and i32.const 2 i32.shl i32.load offset=15360
      local.get $a i32.const 6 i32.shr_u i32.const 1020 i32.and i32.load offset=14336 i32.xor
      local.get $a i32.const 14 i32.shr_u i32.const 1020 i32.and i32.load offset=13312 i32.xor
      local.get $a i32.const 22 i32.shr_u i32.const 1020 i32.and i32.load offset=12288 i32.xor
      local.get $p i32.load offset=4 local.set $a
      local.get $a i32.const 255 i32.and i32.const 2 i32.shl i32.load offset=11264
      local.get $a i32.const 6 i32.shr_u i32.const 1020 i32.and i32.load offset=10240 i32.xor
      local.get $a i32.const 14 i32.shr_u i32.const 1020 i32.and i32.load offset=9216 i32.xor
      local.get $a i32.const 22 i32.shr_u i32.const 1020 i32.and i32.load offset=8192 i32.xor i32.xor
      local.get $p i32.load offset=8 local.set $a
      local.get $a i32.const 255 i32.and i32.const 2 i32.shl i32.load offset=7168
      local.get $a i32.const 6 i32.shr_u i32.const 1020 i32.and i32.load offset=6144 i32.xor
      local.get $a i32.const 14 i32.shr_u i32.const 1020 i32.and i32.load offset=5120 i32.xor
      local.get $a i32.const 22 i32.shr_u i32.const 1020 i32.and i32.load offset=4096 i32.xor i32.xor
      local.get $p i32.load offset=12 local.set $a
      local.get $a i32.const 255 i32.and i32.const 2 i32.shl i32.load offset=3072
      local.get $a i32.const 6 i32.shr_u i32.const 1020 i32.and i32.load offset=2048 i32.xor
      local.get $a i32.const 14 i32.shr_u i32.const 1020 i32.and i32.load offset=1024 i32.xor
      local.get $a i32.const 22 i32.shr_u i32.const 1020 i32.and i32.load offset=0 i32.xor i32.xor
      local.set $crc
      local.get $p i32.const 16 i32.add local.set $p
      br $next
    end end
    block $done loop $next
      local.get $p local.get $end i32.ge_u br_if $done
      local.get $crc local.get $p i32.load8_u i32.xor i32.const 255 i32.and i32.const 2 i32.shl i32.load
      local.get $crc i32.const 8 i32.shr_u i32.xor local.set $crc
      local.get $p i32.const 1 i32.add local.set $p
      br $next
    end end
    local.get $crc)

  ;; [dst, dst + n) ^= [src, src + n); the ranges do not overlap.
  (func $xorin (param $dst i32) (param $src i32) (param $n i32)
    block $done loop $next
      local.get $n i32.const 16 i32.lt_u br_if $done
      local.get $dst local.get $dst v128.load local.get $src v128.load v128.xor v128.store
      local.get $dst i32.const 16 i32.add local.set $dst
      local.get $src i32.const 16 i32.add local.set $src
      local.get $n i32.const 16 i32.sub local.set $n
      br $next
    end end
    block $done loop $next
      local.get $n i32.eqz br_if $done
      local.get $dst local.get $dst i32.load8_u local.get $src i32.load8_u i32.xor i32.store8
      local.get $dst i32.const 1 i32.add local.set $dst
      local.get $src i32.const 1 i32.add local.set $src
      local.get $n i32.const 1 i32.sub local.set $n
      br $next
    end end)

  (func $fold1 (param $b i32) (param $end i32)

    block $done loop $next
      local.get $b i32.const 64 i32.add local.get $end i32.gt_u br_if $done

      local.get $b
      local.get $b v128.load offset=5275
      local.get $b v128.load offset=4508 v128.xor
      local.get $b v128.load offset=2751 v128.xor
      local.get $b v128.load offset=0 v128.xor
      v128.store offset=5275
      local.get $b
      local.get $b v128.load offset=5291
      local.get $b v128.load offset=4524 v128.xor
      local.get $b v128.load offset=2767 v128.xor
      local.get $b v128.load offset=16 v128.xor
      v128.store offset=5291
      local.get $b
      local.get $b v128.load offset=5307
      local.get $b v128.load offset=4540 v128.xor
      local.get $b v128.load offset=2783 v128.xor
      local.get $b v128.load offset=32 v128.xor
      v128.store offset=5307
      local.get $b
      local.get $b v128.load offset=5323
      local.get $b v128.load offset=4556 v128.xor
      local.get $b v128.load offset=2799 v128.xor
      local.get $b v128.load offset=48 v128.xor
      v128.store offset=5323
      local.get $b i32.const 64 i32.add local.set $b
      br $next
    end end

    block $done loop $next
      local.get $b i32.const 16 i32.add local.get $end i32.gt_u br_if $done

      local.get $b
      local.get $b v128.load offset=5275
      local.get $b v128.load offset=4508 v128.xor
      local.get $b v128.load offset=2751 v128.xor
      local.get $b v128.load offset=0 v128.xor
      v128.store offset=5275
      local.get $b i32.const 16 i32.add local.set $b
      br $next
    end end)

  (func $fold2 (param $b i32) (param $end i32)

    block $done loop $next
      local.get $b i32.const 64 i32.add local.get $end i32.gt_u br_if $done

      local.get $b
      local.get $b v128.load offset=290
      local.get $b v128.load offset=136 v128.xor
      local.get $b v128.load offset=113 v128.xor
      local.get $b v128.load offset=107 v128.xor
      local.get $b v128.load offset=32 v128.xor
      local.get $b v128.load offset=0 v128.xor
      v128.store offset=290
      local.get $b
      local.get $b v128.load offset=306
      local.get $b v128.load offset=152 v128.xor
      local.get $b v128.load offset=129 v128.xor
      local.get $b v128.load offset=123 v128.xor
      local.get $b v128.load offset=48 v128.xor
      local.get $b v128.load offset=16 v128.xor
      v128.store offset=306
      local.get $b
      local.get $b v128.load offset=322
      local.get $b v128.load offset=168 v128.xor
      local.get $b v128.load offset=145 v128.xor
      local.get $b v128.load offset=139 v128.xor
      local.get $b v128.load offset=64 v128.xor
      local.get $b v128.load offset=32 v128.xor
      v128.store offset=322
      local.get $b
      local.get $b v128.load offset=338
      local.get $b v128.load offset=184 v128.xor
      local.get $b v128.load offset=161 v128.xor
      local.get $b v128.load offset=155 v128.xor
      local.get $b v128.load offset=80 v128.xor
      local.get $b v128.load offset=48 v128.xor
      v128.store offset=338
      local.get $b i32.const 64 i32.add local.set $b
      br $next
    end end

    block $done loop $next
      local.get $b i32.const 16 i32.add local.get $end i32.gt_u br_if $done

      local.get $b
      local.get $b v128.load offset=290
      local.get $b v128.load offset=136 v128.xor
      local.get $b v128.load offset=113 v128.xor
      local.get $b v128.load offset=107 v128.xor
      local.get $b v128.load offset=32 v128.xor
      local.get $b v128.load offset=0 v128.xor
      v128.store offset=290
      local.get $b i32.const 16 i32.add local.set $b
      br $next
    end end)

  ;; The stream starts at $d (64-aligned) with $x - $d <= 7 zero bytes of padding before the first
  ;; message byte at $x; leading zeros do not change a zero-init CRC. XOR the running state into the
  ;; first 4 message bytes (which makes the CRC a zero-init one).
  (func $start (param $d i32) (param $x i32) (param $state i32)
    local.get $d i32.const 0 local.get $x local.get $d i32.sub memory.fill
    local.get $x local.get $x i32.load local.get $state i32.xor i32.store)
  ;; On the first piece of a call, zero the quotient history the M1 recurrence reads behind $d.
  (func $clearHistory (param $d i32) (param $first i32)
    block $skip
      local.get $first i32.eqz br_if $skip
      local.get $d i32.const 5275 i32.sub i32.const 0 i32.const 5275 memory.fill
    end)

  ;; A non-final piece of n bytes (a multiple of 16, and at least D1 + 16 bytes follow it): all of
  ;; it is quotient. Keeps its last D1 quotient bytes as the history of the next piece.
  (func $chunk (export "chunk") (param $d i32) (param $n i32) (param $x i32) (param $state i32) (param $first i32)
    local.get $d local.get $x local.get $state call $start
    local.get $d local.get $first call $clearHistory
    local.get $d i32.const 5275 i32.sub local.get $d local.get $n i32.add i32.const 5275 i32.sub call $fold1
    local.get $d i32.const 5275 i32.sub local.get $d local.get $n i32.add i32.const 5275 i32.sub i32.const 5275 memory.copy)

  ;; The final piece [d, d + n), n >= 4: returns the un-finalised CRC of the whole input.
  (func $final (export "final") (param $d i32) (param $n i32) (param $x i32) (param $state i32) (param $first i32) (result i32)
    (local $p i32) (local $q i32) (local $L i32)
    local.get $d local.get $x local.get $state call $start
    local.get $d local.get $n i32.add local.set $L
    local.get $d local.set $p
    block $s1
      ;; M1 first when the input is large enough to repay its 8.5 KB of scatter (or continues chunks)
      local.get $n i32.const 16384 i32.lt_u local.get $first i32.and br_if $s1
      local.get $d local.get $first call $clearHistory
      local.get $d local.get $n i32.const 5275 i32.sub i32.const -16 i32.and i32.add local.set $q
      local.get $d i32.const 5275 i32.sub local.get $q i32.const 5275 i32.sub call $fold1
    local.get $q local.get $q i32.const 767 i32.sub i32.const 767 call $xorin
    local.get $q local.get $q i32.const 2524 i32.sub i32.const 2524 call $xorin
    local.get $q local.get $q i32.const 5275 i32.sub i32.const 5275 call $xorin
      local.get $q local.set $p
    end
    block $s2
      local.get $L local.get $p i32.sub i32.const 306 i32.lt_u br_if $s2
      local.get $p i32.const 290 i32.sub i32.const 0 i32.const 290 memory.fill
      local.get $p local.get $L local.get $p i32.sub i32.const 290 i32.sub i32.const -16 i32.and i32.add local.set $q
      local.get $p i32.const 290 i32.sub local.get $q i32.const 290 i32.sub call $fold2
    local.get $q local.get $q i32.const 154 i32.sub i32.const 154 call $xorin
    local.get $q local.get $q i32.const 177 i32.sub i32.const 177 call $xorin
    local.get $q local.get $q i32.const 183 i32.sub i32.const 183 call $xorin
    local.get $q local.get $q i32.const 258 i32.sub i32.const 258 call $xorin
    local.get $q local.get $q i32.const 290 i32.sub i32.const 290 call $xorin
      local.get $q local.set $p
    end
    i32.const 0 local.get $p local.get $L call $tab)
)