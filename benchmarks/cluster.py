"""make cluster: the product as separate hosts on a network, and a batch of requests while hosts fail.

Each host is a network namespace of this machine, joined to a bridge by a veth pair: a load balancer
(HAProxy, Debian's), two web hosts (gunicorn), three worker hosts (a Celery pool and a mail worker
each; beat on the third). The services sit at the bridge's own address, the one way in from the
hosts: RabbitMQ as the broker (the machine's, in a virtual host of this run's own), PostgreSQL and
Redis (devstack's), the estate's helpdesk, and S3 for exports and the work area (moto's server).
What is not a network service stays shared through the machine's files: the mail sink the client
reads codes from, and the estate's content share.

Mid-batch, one worker host is cut off the network (its link goes down, and comes back a little
later: what it was doing meanwhile has been revived elsewhere, and what it finishes late must not
count twice), another is killed outright (cut off, then every process SIGKILLed: no goodbye reaches
the broker or the database), the broker is restarted, and a web host is stopped (the balancer routes
around it). Then every request is checked as `make chaos` checks them, the exports fetched from S3
first; the last line printed is the summary of contract §8 with `hosts_lost` added.

The namespaces, the bridge, the relays and the broker's virtual host are removed when the run
ends, on Ctrl-C, SIGTERM or a failure too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import boto3
import psutil
import requests

from devstack import POOL_QUEUES, Services, gunicorn_args, mail_worker_args, port_answers, wait_for

from .chaos import Chaos
from .harness import ROOT, Mailbox, Product, free_port, note

PYTHON = sys.executable
HAPROXY = "/usr/sbin/haproxy"
RABBITMQ = ("127.0.0.1", 5672)  # the machine's RabbitMQ
PRODUCT_QUEUES = ("celery", "dsar.final", "dsar.mail")  # the product's Celery queues (dsar/settings.py)
# Addresses on the cluster network: .1 is this machine's side of the bridge, where the services are.
HOSTS = {"lb": 2, "web1": 11, "web2": 12, "worker1": 21, "worker2": 22, "worker3": 23}
WEB_HOSTS, WORKER_HOSTS = ("web1", "web2"), ("worker1", "worker2", "worker3")
WEB_PORT, LB_PORT = 8000, 80
CUT_SECONDS = 8.0  # how long the cut-off worker host stays off the network: past its leases, within TCP's patience
OUTAGE_PROBE_SECONDS = 5.0  # how long the web is asked for answers while the broker is down
BUCKET = "dsar-cluster"
# A relay closes a connection whose far end stopped answering (a host killed or cut off) within
# 25 s, as a database server's tcp_keepalives_* and tcp_user_timeout settings would: when idle,
# after three unanswered probes; with data sent and never acknowledged, after 25 s of it
# (TCP_USER_TIMEOUT, level 6 option 18). Without the second, a host killed in the middle of an
# erasure's transaction leaves its row locks held, and the erasure's retry waiting on them, for
# Linux's default retransmission time, a quarter of an hour.
KEEPALIVE = "keepalive,keepidle=10,keepintvl=5,keepcnt=3,setsockopt-int=6:18:25000"
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "http": 80}


PR_SET_PDEATHSIG = 1  # prctl(2)


def dies_with_this_run() -> None:
    """Run in a child before its program: SIGKILL it when this run ends, however it ends (a run
    killed before it could clean up leaves no host process or relay behind)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_quiet(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True)


class Network:
    """A bridge on this machine and one network namespace a host, each joined to it by a veth pair.

    Its number, free among the runs on this machine (another checkout's may be running), names the
    bridge, the namespaces and the subnet 10.213.N.0/24."""

    def __init__(self) -> None:
        self.number = self._bridge_claim()
        self.bridge = f"dsarc{self.number}"
        self.gateway = f"10.213.{self.number}.1"
        self.hosts: list[str] = []
        run_quiet("ip", "link", "set", self.bridge, "alias", f"owner={os.getpid()}")
        run_quiet("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run_quiet("ip", "link", "set", self.bridge, "up")

    @classmethod
    def _bridge_claim(cls) -> int:
        """The first number whose bridge this run could create: creating it is the claim. A bridge
        whose run is gone (killed before it could clean up) is removed, and its number taken."""
        if not shutil.which("ip"):
            raise SystemExit("cluster: `ip` (iproute2) is missing; install Debian's iproute2")
        for number in range(10, 250):
            for _ in range(2):
                made = subprocess.run(["ip", "link", "add", f"dsarc{number}", "type", "bridge"], capture_output=True, text=True)
                if made.returncode == 0:
                    return number
                if "File exists" not in made.stderr:
                    raise SystemExit("cluster: cannot make a bridge for the hosts' network (root and iproute2 are needed): "
                                     f"{made.stderr.strip()}")
                if not cls._abandoned(number):
                    break
                note(f"cluster: removing the network dsarc{number}, whose run is gone")
                cls._remove(number)
        raise SystemExit("cluster: no free bridge number between dsarc10 and dsarc249")

    @staticmethod
    def _abandoned(number: int) -> bool:
        shown = subprocess.run(["ip", "-o", "link", "show", f"dsarc{number}"], capture_output=True, text=True).stdout
        owner = re.search(r"alias owner=(\d+)", shown)
        return bool(owner) and not psutil.pid_exists(int(owner.group(1)))

    @staticmethod
    def _remove(number: int) -> None:
        """Remove the network `number`: its hosts' processes, links and namespaces, then its bridge."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        for namespace in (name for name in listed if name.startswith(f"dsarc{number}-")):
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            # The link first: a namespace goes only once the kernel has reaped it, and the next run
            # to claim this number makes links of the same names.
            subprocess.run(["ip", "link", "delete", f"dc{namespace.removeprefix('dsarc')}"], capture_output=True)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        subprocess.run(["ip", "link", "delete", f"dsarc{number}"], capture_output=True)

    def namespace(self, host: str) -> str:
        return f"dsarc{self.number}-{host}"

    def address(self, host: str) -> str:
        return f"10.213.{self.number}.{HOSTS[host]}"

    def link(self, host: str) -> str:
        """The machine's end of the host's veth pair: its cable into the bridge."""
        return f"dc{self.number}-{host}"

    def host_add(self, host: str) -> None:
        namespace, link = self.namespace(host), self.link(host)
        try:
            run_quiet("ip", "netns", "add", namespace)
            self.hosts.append(host)
            run_quiet("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            run_quiet("ip", "link", "set", link, "master", self.bridge, "up")
            inside = ["ip", "netns", "exec", namespace, "ip"]
            run_quiet(*inside, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            run_quiet(*inside, "link", "set", "eth0", "up")
            run_quiet(*inside, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as error:
            raise SystemExit(f"cluster: cannot make the host {host} ({' '.join(error.cmd)}): {error.stderr.strip()}") from None

    def spawn(self, host: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        """A process on `host`, in a session of its own."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespace(host), *args], cwd=ROOT, env=env,
                                start_new_session=True, stdout=sys.stderr, preexec_fn=dies_with_this_run)

    def cut(self, host: str) -> None:
        run_quiet("ip", "link", "set", self.link(host), "down")

    def heal(self, host: str) -> None:
        run_quiet("ip", "link", "set", self.link(host), "up")

    def kill_all(self, host: str) -> None:
        """SIGKILL every process of the host, as a power cut would end them."""
        listed = subprocess.run(["ip", "netns", "pids", self.namespace(host)], capture_output=True, text=True)
        for pid in listed.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def destroy(self) -> None:
        self._remove(self.number)


class Relays:
    """The services' ports on the cluster network: each listens at the bridge's address and passes
    connections on to where the service listens on this machine (loopback or a Unix socket), with
    socat (Debian's)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.processes: list[subprocess.Popen] = []

    def add(self, target: str) -> int:
        """Relay to socat's `target` (TCP:host:port or UNIX-CONNECT:path); the port it listens on."""
        port = free_port()
        self.processes.append(subprocess.Popen(
            ["socat", f"TCP-LISTEN:{port},bind={self.gateway},fork,reuseaddr,{KEEPALIVE}", target],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=dies_with_this_run))
        return port

    def url(self, url: str) -> str:
        """`url` (a database's, Redis's, an HTTP service's), as a host reaches it through a relay."""
        parts = urlsplit(url)
        credentials, _, location = parts.netloc.rpartition("@")
        if unquote(location).startswith("/"):  # PostgreSQL on a Unix socket: its directory
            socket_file = next(p for p in sorted(Path(unquote(location)).glob(".s.PGSQL.*")) if p.suffix != ".lock")
            target = f"UNIX-CONNECT:{socket_file}"
        else:
            target = f"TCP:{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}"
        relayed = f"{self.gateway}:{self.add(target)}"
        return urlunsplit(parts._replace(netloc=f"{credentials}@{relayed}" if credentials else relayed))

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class RabbitBroker:
    """The machine's RabbitMQ (started when it is not running), with a virtual host and a user of
    this run's own. A restart is the broker's: every connection dropped, its listener gone a few
    seconds, its durable queues and persistent messages kept."""

    def __init__(self, number: int) -> None:
        self.vhost, self.user, self.password = f"dsar-cluster-{number}", f"dsar-cluster-{number}", secrets.token_urlsafe(16)
        self.made = False

    def start(self) -> None:
        if not port_answers(*RABBITMQ):
            note("cluster: starting the machine's RabbitMQ")
            subprocess.run(["rabbitmq-server", "-detached"], check=True)
            wait_for(lambda: port_answers(*RABBITMQ), "RabbitMQ on 127.0.0.1:5672", 90)
        self._ctl("add_vhost", self.vhost)  # or finds it, left by a run killed before it could clean up
        self.made = True
        try:
            self._ctl("add_user", self.user, self.password)
        except subprocess.CalledProcessError:  # left so too
            self._ctl("change_password", self.user, self.password)
        self._ctl("set_permissions", "-p", self.vhost, self.user, ".*", ".*", ".*")

    def queues(self) -> list[str]:
        """The product's queues in the run's virtual host: where the doorbells went."""
        listed = run_quiet("rabbitmqctl", "-q", "list_queues", "-p", self.vhost, "--no-table-headers", "name").stdout.split()
        return sorted(name for name in listed if name in PRODUCT_QUEUES)

    def url(self, host: str, port: int) -> str:
        return f"amqp://{self.user}:{self.password}@{host}:{port}/{self.vhost}"

    def restart(self, while_down) -> None:
        """Stop the broker, call `while_down`, start it again."""
        self._ctl("stop_app")
        try:
            while_down()
        finally:
            self._ctl("start_app")
            wait_for(lambda: port_answers(*RABBITMQ), "RabbitMQ after its restart", 60)

    def remove(self) -> None:
        if self.made:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ctl("start_app")  # if a failure came while it was stopped
                self._ctl("delete_vhost", self.vhost)
                self._ctl("delete_user", self.user)

    @staticmethod
    def _ctl(*args: str) -> None:
        run_quiet("rabbitmqctl", "-q", *args)


def haproxy_config(network: Network) -> str:
    """The balancer: least connections over the web hosts; a host that refuses connections is
    checked out within two seconds, and meanwhile a request it refused is sent to another (a refused
    connection never reached a server, so retrying even a POST is safe)."""
    servers = "".join(f"    server {host} {network.address(host)}:{WEB_PORT} check inter 1s fall 2 rise 2\n"
                      for host in WEB_HOSTS)
    return (
        "global\n    maxconn 512\n"
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n"
        "    retries 3\n    option redispatch 1\n    retry-on conn-failure\n    option http-server-close\n    http-reuse never\n"
        f"frontend web\n    bind 0.0.0.0:{LB_PORT}\n    default_backend hosts\n"
        f"backend hosts\n    balance leastconn\n{servers}"
    )


# What the cluster needs from Debian, by the file each package installs.
DEBIAN_PACKAGES = {"haproxy": HAPROXY, "socat": "/usr/bin/socat", "rabbitmq-server": "/usr/sbin/rabbitmq-server"}


def debian_ensure() -> None:
    """Install from Debian what the cluster needs and the machine lacks."""
    missing = [package for package, path in DEBIAN_PACKAGES.items() if not Path(path).exists()]
    if missing:
        note(f"cluster: installing Debian's {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


class Cluster(Chaos):
    """The chaos batch, on hosts: the filing, the progress and the verdict are `make chaos`'s."""

    def __init__(self, *, requests_n: int, seed: int, network: Network) -> None:
        # What Chaos.__init__ sets, but for a product on hosts and RabbitMQ rather than on this
        # machine and a Redis of the run's own.
        self.rng = random.Random(seed)
        self.requests_n, self.network = requests_n, network
        self.relays = Relays(network.gateway)
        self.broker = RabbitBroker(network.number)
        # Faults recovered from within seconds (benchmarks/cluster_settings.py).
        self.product = Product(name="cluster", workers=len(WORKER_HOSTS),
                               env={"DJANGO_SETTINGS_MODULE": "benchmarks.cluster_settings"})
        self.ids: list[str] = []
        self.ids_lock = threading.Lock()
        self.kills = self.restarts = self.hosts_lost = 0
        self.outage_answers: dict[str, int] = {}
        self.unclean: list[str] = []
        self.stop = threading.Event()
        self.moto: subprocess.Popen | None = None
        self.s3 = None  # a client of the S3 server, once it runs
        self.hosts: dict[str, list[subprocess.Popen]] = {}
        self.healing: threading.Timer | None = None

    # --- set-up -------------------------------------------------------------------------------------

    def services(self) -> None:
        """The services at the bridge's address, and the product's configuration pointing there."""
        self.broker.start()
        gateway, env = self.network.gateway, self.product.env
        s3_port = free_port()
        self.moto = subprocess.Popen([str(Path(PYTHON).parent / "moto_server"), "-H", gateway, "-p", str(s3_port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=dies_with_this_run)
        s3 = f"http://{gateway}:{s3_port}"
        wait_for(lambda: port_answers(gateway, s3_port), "the S3 server", 30)
        keys = {"access_key": "cluster", "secret_key": "cluster", "region_name": "us-east-1"}
        self.s3 = boto3.client("s3", endpoint_url=s3, region_name=keys["region_name"],
                               aws_access_key_id=keys["access_key"], aws_secret_access_key=keys["secret_key"])
        self.s3.create_bucket(Bucket=BUCKET)
        env["DSAR_STORAGE"] = json.dumps({"backend": "storages.backends.s3.S3Storage",
                                          "options": {"bucket_name": BUCKET, "endpoint_url": s3, **keys}})
        env["DATABASE_URL"] = self.relays.url(env["DATABASE_URL"])
        env["REDIS_URL"] = self.relays.url(env["REDIS_URL"])
        if env.get("DSAR_HELPDESK_BASE_URL"):
            env["DSAR_HELPDESK_BASE_URL"] = self.relays.url(env["DSAR_HELPDESK_BASE_URL"])
        env["DSAR_BROKER_URL"] = self.broker.url(gateway, self.relays.add(f"TCP:{RABBITMQ[0]}:{RABBITMQ[1]}"))
        self.product.url = env["DSAR_PUBLIC_URL"] = f"http://{self.network.address('lb')}:{LB_PORT}"

    def start(self) -> None:
        for host in HOSTS:
            self.network.host_add(host)
        self.product.reset()
        env, spawn = self.product.env, self.network.spawn
        for host in WEB_HOSTS:
            self.hosts[host] = [spawn(host, [PYTHON, *gunicorn_args(f"0.0.0.0:{WEB_PORT}", 1, 4), "--log-level", "warning"], env)]
        for host in WORKER_HOSTS:
            quiet = ["-l", "warning", "--without-mingle", "--without-gossip", "--without-heartbeat"]
            pool = [PYTHON, "-m", "celery", "-A", "dsar", "worker", "-c", "2", "-Q", POOL_QUEUES, "-n", f"pool@{host}", *quiet]
            self.hosts[host] = [
                spawn(host, pool, env),
                spawn(host, [PYTHON, *mail_worker_args(f"mail@{host}"), *quiet], env),
            ]
        # Beat is one of a kind (two would ring twice): on the worker host the faults spare.
        self.hosts["worker3"].append(spawn("worker3", [PYTHON, "-m", "celery", "-A", "dsar", "beat", "-l", "warning",
                                                       "-s", str(self.product.data / "beat-schedule")], env))
        config = self.product.data / "haproxy.cfg"
        config.write_text(haproxy_config(self.network))
        self.hosts["lb"] = [spawn("lb", [HAPROXY, "-f", str(config), "-db"], env)]
        wanted = 2 * len(WORKER_HOSTS)  # a pool worker and a mail worker a host

        def healthy() -> bool:
            with contextlib.suppress(requests.RequestException, ValueError):
                return requests.get(f"{self.product.url}/healthz", timeout=5).json().get("workers", 0) >= wanted
            return False

        wait_for(healthy, f"the cluster ({wanted} workers answering through the balancer)", 120)

    # --- the faults ---------------------------------------------------------------------------------

    def inject(self) -> None:
        """Each fault once that share of the batch is filed, in this order: mid-batch, however
        quickly the batch is done."""
        faults = [(0.15, self.worker_cut), (0.3, self.worker_kill), (0.45, self.broker_restart), (0.6, self.web_stop)]
        for threshold, fault in faults:
            while len(self.ids) < threshold * self.requests_n:
                if self.stop.wait(0.05):
                    return
            time.sleep(self.rng.uniform(0, 0.3))
            fault()

    def worker_cut(self) -> None:
        note("cluster: worker1 cut off the network")
        self.network.cut("worker1")
        self.hosts_lost += 1
        self.healing = threading.Timer(CUT_SECONDS, self._heal)
        self.healing.start()

    def _heal(self) -> None:
        self.network.heal("worker1")
        note(f"cluster: worker1 back on the network after {CUT_SECONDS:.0f} s")

    def worker_kill(self) -> None:
        note("cluster: worker2 killed outright (cut off, then every process SIGKILLed)")
        self.network.cut("worker2")
        self.network.kill_all("worker2")
        self.kills += 1
        self.hosts_lost += 1

    def broker_restart(self) -> None:
        note("cluster: the broker restarted")
        self.broker.restart(self._outage_probe)
        self.restarts += 1
        note("cluster: the broker is back")

    def _outage_probe(self) -> None:
        """While the broker is down a filing is still taken (the row is the job; the sweeper rings
        later) or refused with a clean 503, and /healthz says 503: never a 500, a hang or a reset."""
        ended, number = time.monotonic() + OUTAGE_PROBE_SECONDS, 0
        while time.monotonic() < ended:
            number += 1
            email = f"outage-{number}-{self.rng.getrandbits(32)}@example.com"
            for method, path, body, good in (("POST", "/api/v1/requests", {"type": "access", "email": email}, {201, 503}),
                                             ("GET", "/healthz", None, {503})):
                sent = time.monotonic()
                try:
                    response = requests.request(method, f"{self.product.url}{path}", json=body, timeout=10)
                except requests.RequestException as error:
                    self.unclean.append(f"{method} {path}: {error}")
                    continue
                note(f"cluster: broker down: {method} {path} answered {response.status_code} in {time.monotonic() - sent:.2f} s")
                self.outage_answers[str(response.status_code)] = self.outage_answers.get(str(response.status_code), 0) + 1
                if response.status_code not in good or "json" not in response.headers.get("Content-Type", ""):
                    self.unclean.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            time.sleep(0.1)

    def web_stop(self) -> None:
        note("cluster: web2 stopped (SIGTERM: in-flight requests finish, then it is gone)")
        for process in self.hosts["web2"]:
            process.send_signal(signal.SIGTERM)
        for process in self.hosts["web2"]:
            process.wait(40)
        self.hosts_lost += 1

    # --- the verdict --------------------------------------------------------------------------------

    def sessions_show(self) -> None:
        """What the database sessions are doing, when requests did not finish: a wait on a lock
        names what holds them up."""
        with self.product.sql() as conn:
            for row in conn.execute(
                """SELECT pid, datname, client_addr, state, wait_event_type, wait_event, now() - xact_start, left(query, 100)
                     FROM pg_stat_activity WHERE datname LIKE %s AND state <> 'idle' AND pid <> pg_backend_pid()""",
                [f"{self.product.database}%"],
            ):
                note(f"cluster: unfinished: session {row}")

    def exports_fetch(self) -> None:
        """The bucket's exports, to where `make chaos`'s verdict reads them."""
        storage = self.product.data / "storage"
        shutil.rmtree(storage, ignore_errors=True)
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="exports/"):
            for item in page.get("Contents", []):
                target = storage / item["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(BUCKET, item["Key"], str(target))

    def run(self) -> dict:
        self.services()
        self.prepare()
        self.start()
        started = time.monotonic()
        mailbox, session = Mailbox(self.product.mail), requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
        injector = threading.Thread(target=self.inject, daemon=True)
        injector.start()
        pool = ThreadPoolExecutor(8)
        try:
            list(pool.map(lambda i: self.submit(i, mailbox, session), range(self.requests_n)))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # on Ctrl-C, file no more
        deadline = time.monotonic() + 300
        while self.progress() < self.requests_n and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.progress() < self.requests_n:
            self.sessions_show()
        injector.join(60)  # the last fault may still be under way
        if self.healing:
            self.healing.join()
        self.stop.set()
        for line in self.unclean[:10]:
            note(f"cluster: unclean answer during the broker's outage: {line}")
        seconds = time.monotonic() - started
        self.exports_fetch()
        return {**self.verdict(seconds), "hosts_lost": self.hosts_lost, "broker_queues": self.broker.queues()}

    def close(self) -> None:
        if self.healing:
            self.healing.cancel()
        self.network.destroy()
        self.relays.stop()
        if self.moto:
            os.killpg(self.moto.pid, signal.SIGKILL)
            self.moto.wait(10)
        self.broker.remove()
        self.product.stop()


def interrupted(_signum, _frame) -> None:
    """SIGTERM ends the run as Ctrl-C does: through the `finally` that takes the network down."""
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="make cluster")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    note(f"cluster: seed {args.seed}")
    debian_ensure()
    signal.signal(signal.SIGTERM, interrupted)
    # PostgreSQL, Redis and the helpdesk: devstack's, or those of the run this one is part of (the
    # suite's: a second devstack would take back the access its PostgreSQL was given to `var/`).
    services = contextlib.nullcontext() if os.environ.get("DATABASE_URL") else Services(mode="bench")
    try:
        with services:
            network = Network()
            cluster = None
            try:
                cluster = Cluster(requests_n=args.requests, seed=args.seed, network=network)
                summary = cluster.run()
            finally:
                if cluster:
                    cluster.close()
                else:
                    network.destroy()
    except BaseException as stopped:
        # Everything is taken down by now. Out at once: requests still being filed would wait for
        # answers from hosts that are no more.
        if isinstance(stopped, KeyboardInterrupt):
            note("cluster: interrupted; the hosts, the network and the services are gone")
        elif isinstance(stopped, SystemExit):
            print(stopped.code, file=sys.stderr)
        else:
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(130 if isinstance(stopped, KeyboardInterrupt) else 1)
    print(json.dumps(summary), flush=True)
    clean = summary["lost"] == summary["duplicate_exports"] == summary["corrupt_archives"] == 0
    clean = clean and summary["unclean_outage_answers"] == 0 and summary["broker_queues"] == list(PRODUCT_QUEUES)
    return 0 if clean and summary["completed"] == summary["submitted"] else 1


if __name__ == "__main__":
    sys.exit(main())
