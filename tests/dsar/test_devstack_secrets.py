"""What `make run` leaves on disk and on the network: its data readable by its owner alone, and its
Redis behind a password."""

from __future__ import annotations

import os
import stat

import pytest
import redis

import devstack


def test_the_data_directory_and_what_is_made_in_it_are_readable_by_their_owner_alone(tmp_path):
    data = tmp_path / "var"
    (data / "mail").mkdir(parents=True)
    (data / "mail" / "code.eml").write_text("Your code is 12345678")
    (data / "mail" / "code.eml").chmod(0o644)
    (data / "mail").chmod(0o755)
    before = os.umask(0o022)
    try:
        devstack.owner_only(data)
        (data / "services.env").write_text("DSAR_SECRET_KEY=…")
        (data / "exports").mkdir()
    finally:
        os.umask(before)
    modes = {path.relative_to(data).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in [data, *data.rglob("*")]}
    assert modes == {".": 0o700, "mail": 0o700, "mail/code.eml": 0o600, "services.env": 0o600, "exports": 0o700}


def test_the_embedded_redis_refuses_clients_without_its_password(tmp_path):
    port = devstack.free_port()
    process = devstack.redis_server_start(tmp_path, port, persist=False, password="s3cret-for-this-install")
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis.from_url(f"redis://:s3cret-for-this-install@127.0.0.1:{port}/0").ping() is True
        assert "s3cret" not in " ".join(process.args)  # nor in any process listing
    finally:
        process.terminate()
        process.wait(10)
