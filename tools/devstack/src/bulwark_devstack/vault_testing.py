"""What a test holds for one provisioned Vault prefix: its identities' settings and
connected sessions (closed by `close()`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bulwark_common.settings import VaultConfig
from bulwark_common.vault import Vault
from bulwark_devstack.vault import Provisioned, VaultServer


@dataclass
class VaultStack:
    server: VaultServer
    provisioned: Provisioned
    databases: dict[str, str]  # admin URLs, for assertions
    redis_url: str
    redis_prefix: str
    _open: list[Vault] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.provisioned.prefix

    def config(self, ident: str, **overrides: Any) -> VaultConfig:
        env: dict[str, Any] = dict(self.provisioned.env[ident])
        env.update(overrides)
        return VaultConfig(**env)

    def connect(self, ident: str, **overrides: Any) -> Vault:
        service = "auth" if ident == "auth-keys" else ident
        vault = Vault.connect(self.config(ident, **overrides), service)
        self._open.append(vault)
        return vault

    def close(self) -> None:
        for vault in self._open:
            vault.close()


VaultStackFactory = Callable[..., VaultStack]
