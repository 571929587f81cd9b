"""nftables commands, run in-process through libnftables (what the `nft` binary is a thin shell around).

Why in-process: adding a published port is one `add element` to a map, which libnftables does in about
0.1 ms, where starting `nft` costs milliseconds and `iptables` (which re-reads the whole ruleset) more.
Without the library (package libnftables1, pulled in by `nftables`) the `nft` binary runs the same text.
"""

from __future__ import annotations

import subprocess

from dockyard.errors import HostError


class NftError(HostError):
    pass


class Nft:
    def __init__(self) -> None:
        self._lib = None
        self._ctx = None
        try:
            self._open_library()
        except OSError:
            self._lib = None

    def _open_library(self) -> None:
        import ctypes

        lib = ctypes.CDLL("libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._lib, self._ctx = lib, ctx

    def run(self, commands: str) -> str:
        """Run nft commands (one transaction); return their output; NftError with nft's message on failure."""
        if self._lib is not None:
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
            if rc != 0:
                error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode(errors="replace")
                raise NftError(f"nft: {error.strip() or 'failed'}")
            return output
        try:
            result = subprocess.run(["nft", "-f", "-"], input=commands.encode(), capture_output=True)
        except FileNotFoundError:
            raise NftError("nft is not installed (apt-get install nftables)") from None
        if result.returncode != 0:
            raise NftError(f"nft: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode(errors="replace")

    def try_run(self, commands: str) -> bool:
        """Run commands whose failure is expected at times (deleting what may be gone already)."""
        try:
            self.run(commands)
            return True
        except NftError:
            return False

    def close(self) -> None:
        if self._lib is not None and self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._lib, self._ctx = None, None
