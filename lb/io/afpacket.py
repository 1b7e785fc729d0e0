"""AF_PACKET ports: a kernel interface read through a TPACKET_V2 or V3 RX ring, written with send/sendmmsg.

Setup order (packet(7)): a packet socket with protocol 0 receives nothing, so the ring is set up before
`bind(ifname, ETH_P_ALL)`; then PACKET_QDISC_BYPASS (our frames go straight to the driver, as pktgen's
do: no qdisc to queue or reorder them) and PACKET_IGNORE_OUTGOING (we never see our own transmissions
looped back as ETH_P_ALL taps otherwise would).  `--workers N` joins N sockets to one PACKET_FANOUT
group in hash mode, so both directions of a flow land on the same worker (the kernel hashes the flow
symmetrically, skb_get_hash), and each worker keeps its own connection table, as DPVS's lcores do.

Two ring layouts (`lb run --rx-ring v2|v3`, packet_mmap.rst):
- TPACKET_V2 (the default): fixed slots of `frame_size` bytes, each with its own tp_status.  The kernel
  flips a slot to TP_STATUS_USER as soon as it has copied the frame in, so a lone frame is ready at once;
  user space gives the slot back by writing TP_STATUS_KERNEL into it.  The C pump walks it
  (csched/src/pump.c rx_ring_v2).
- TPACKET_V3: the kernel packs frames tightly into blocks and hands a block to user space only when it is
  full or when its retire timer (`retire_ms`, at least 1 ms) fires; user space gives the whole block back.
  Denser (a 64-byte frame takes ~128 bytes, not a 2 KiB slot), but at low rates every frame waits for the
  timer: ~1 ms per hop, which was the p50 latency of `lb run` (bench/RESULTS.md) and capped a single
  connection's request rate.  Measured in the lab (tests/e2e/test_run_latency.py, bench/e2e/run.py): V2
  cuts the UDP round trip through `lb run` NAT from ~2 ms (two retire waits) to tens of µs and keeps the
  packet rate, hence the default.  The C pump walks V3 in rx_ring.
`recv` below is the same walk in Python for both, for the reference loop and for reading.

Where the kernel of the balancer's namespace comes in: packet taps (ptype_all) are delivered in
`__netif_receive_skb_core` before tc ingress and the netfilter netdev ingress hook, so a netdev-ingress
drop rule for VIP traffic (loop.KernelGuard) hides those frames from the namespace's IP stack while the
ring still gets its copy.

TX: `send`/sendmmsg by default.  `tx_ring=True` adds a TPACKET_V3 TX ring (mapped after the RX ring; frames
copied in, one send() kicks them all).  Measured on the lab (bench/e2e, lb-dr vs lb-dr-txr): no gain, the
cost is the per-frame skb and the peer's receive work either way (see bench/e2e/run.py), so it stays an
option (`lb run --tx-ring`).  Once a socket has a TX ring it sends only from it.

Where the work runs (bench/e2e/run.py, lb/io/rps.py): every frame sent here builds an skb and, on a veth,
runs the peer's receive path inside our send call; every frame received is copied into the ring by the
ingress device's receive softirq.  perf on the lab: ~90 % of the balancer process's time is sendmmsg (skb
allocation and copy, veth_xmit, the peer's receive or the RPS IPI that hands it to another CPU), under
5 % is the pump and the core.  So placement matters more than the loop: `lb run --cpus 1 --rps-cpus 1`
keeps the process on CPU 1 and steers its ports' receive softirq to CPU 0.  And priority: the kernel's
balancers run in softirq, which no task delays, while `lb run` used to wait behind whatever else was
runnable on its CPU (the lab's real servers, other work) with frames in its ring; `lb run` now takes
SCHED_FIFO 1 by default (`--rt-priority`, lb/io/rps.py), which raised keep-alive req/s through the lab
by ~10 % on a quiet box and 60-80 % when its CPU was shared (A/B in one lab, bench/e2e/tcp.py's setup).
A busy-poll before sleeping (`--busy-poll-us`) did not pay on 2 CPUs: the spin takes the CPU the real
servers need.

Offloads: a veth peer with checksum offload on hands us frames whose L4 checksum is only the folded
pseudo-header sum (TP_STATUS_CSUMNOTREADY): the pump completes it before the core sees the frame
(lb_frame_csum_complete, counted as rx_csum_partial), so tx checksum offload may stay on (the veth
default).  GSO/TSO super-frames bigger than the MTU are still dropped (counted as rx_trunc): with TCP
bulk traffic turn tso/gso off on the peers (`ethtool -K DEV tso off gso off`), as forwarders on real NICs
see MTU-sized frames anyway.  (PACKET_VNET_HDR would describe GSO frames, but the RX ring then needs the
vnet header in every frame slot; not done.)
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import mmap
import socket
import struct
from ipaddress import IPv4Interface

from lb.io.port import Port, PortAddr

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
TPACKET_V3 = 2
PACKET_FANOUT_DATA = 22
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_CBPF = 6
PACKET_FANOUT_FLAG_DEFRAG = 0x8000

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_SENDING = 2
#: TX ring frame data offset: TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) (af_packet.c tpacket_parse_header)
TX_DATA_OFF = 48
#: the same for a TPACKET_V2 socket: TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
TX_DATA_OFF_V2 = 32

# ioctls (linux/sockios.h)
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status, num_pkts,
# offset_to_first_pkt, blk_len, seq_num (u64), ts_first, ts_last
_BLOCK_STATUS_OFF = 8
_BLOCK_HDR = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt (at offset 8)
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac, tp_net
_PKT_HDR = struct.Struct("=IIIIIIHH")
# struct tpacket2_hdr: tp_status, tp_len, tp_snaplen, tp_mac, tp_net (then sec, nsec, vlan tci/tpid, padding)
_PKT2_HDR = struct.Struct("=IIIHH")


# classic BPF (linux/filter.h): opcodes and the negative offsets that address the network header and
# skb fields whatever the packet's data pointer is
_SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF + SKF_AD_PROTOCOL: skb->protocol in host order
_SKF_NET_OFF = 0xFFF00000  # SKF_NET_OFF: offsets from the network header
_LD_W_ABS, _JEQ_K, _TAX, _RSH_K = 0x20, 0x15, 0x07, 0x74
_XOR_X, _MOD_K, _RET_A, _RET_K = 0xAC, 0x94, 0x16, 0x06


def fanout_cbpf(key: str, members: int) -> bytes:
    """A classic BPF fanout program: IPv4 frames go to member hash(key address) % members, where key is
    "saddr" (ports that face clients: requests come from the client) or "daddr" (ports that face NAT real
    servers: replies go to the client); everything else (ARP) goes to member 0.  Both directions of a NAT
    connection thus reach the worker whose table holds it, which a plain flow hash cannot promise (the
    reply's tuple has RIP where the request had the VIP)."""
    off = 12 if key == "saddr" else 16
    prog = [
        (_LD_W_ABS, 0, 0, _SKF_AD_PROTOCOL),
        (_JEQ_K, 0, 6, 0x0800),
        (_LD_W_ABS, 0, 0, _SKF_NET_OFF + off),
        (_TAX, 0, 0, 0),
        (_RSH_K, 0, 0, 16),
        (_XOR_X, 0, 0, 0),
        (_MOD_K, 0, 0, members),
        (_RET_A, 0, 0, 0),
        (_RET_K, 0, 0, 0),
    ]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


def _ifreq(name: str) -> bytes:
    return struct.pack("16s24x", name.encode())


def link_info(name: str) -> PortAddr:
    """MAC, IPv4 address/prefix and MTU of interface `name` in the current namespace (ioctls, so no sysfs
    that might belong to another namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fd = s.fileno()
        hw = fcntl.ioctl(fd, SIOCGIFHWADDR, _ifreq(name))
        mac = hw[18:24]
        mtu = struct.unpack_from("=i", fcntl.ioctl(fd, SIOCGIFMTU, _ifreq(name)), 16)[0]
        ipv4: IPv4Interface | None = None
        try:
            a = fcntl.ioctl(fd, SIOCGIFADDR, _ifreq(name))
            m = fcntl.ioctl(fd, SIOCGIFNETMASK, _ifreq(name))
            ip = socket.inet_ntoa(a[20:24])
            mask = socket.inet_ntoa(m[20:24])
            ipv4 = IPv4Interface(f"{ip}/{mask}")
        except OSError:  # no IPv4 address on the link
            ipv4 = None
    return PortAddr(mac=bytes(mac), ipv4=ipv4, mtu=mtu)


class AFPacketPort(Port):
    """A kernel interface as a balancer port: TPACKET_V2 (default) or V3 RX ring + send()."""

    kind = "ring"

    def __init__(self, index: int, name: str, *, block_size: int = 1 << 17, block_nr: int = 32,
                 frame_size: int = 2048, retire_ms: int = 1, fanout_group: int | None = None,
                 fanout_key: str | None = None, fanout_members: int = 1, qdisc_bypass: bool = True,
                 tx_ring: bool = False, tx_frames: int = 4096, addr: PortAddr | None = None,
                 rx_ring: str = "v2") -> None:
        if rx_ring not in ("v2", "v3"):
            raise ValueError(f"rx_ring must be v2 or v3, not {rx_ring!r}")
        if block_size % frame_size or frame_size % 16:
            raise ValueError("the ring's block size must be a multiple of its frame size (a multiple of 16)")
        info = link_info(name)
        if addr is not None:
            info = PortAddr(addr.mac or info.mac, addr.ipv4 or info.ipv4, addr.mtu or info.mtu)
        super().__init__(index, name, info)
        self.version = TPACKET_V2 if rx_ring == "v2" else TPACKET_V3
        self.block_size = block_size
        self.block_nr = block_nr
        self.rx_size = block_size * block_nr
        # V2: contiguous slots of frame_size (block_size is a multiple of it, so no gaps between blocks)
        self.frame_size = frame_size
        self.frame_nr = self.rx_size // frame_size
        # TX ring (optional): frames of frame_size, contiguous, mapped after the RX ring
        self.tx_frame_size = frame_size
        self.tx_frame_nr = tx_frames if tx_ring else 0
        self._tx_head = 0
        self.ifindex = socket.if_nametoindex(name)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            s = self.sock
            s.setsockopt(SOL_PACKET, PACKET_VERSION, self.version)
            if self.version == TPACKET_V2:  # struct tpacket_req
                req = struct.pack("=4I", block_size, block_nr, frame_size, self.frame_nr)
            else:  # struct tpacket_req3: + retire_blk_tov, sizeof_priv, feature_req_word
                req = struct.pack("=7I", block_size, block_nr, frame_size, self.frame_nr, retire_ms, 0, 0)
            if tx_ring:  # before any ring (else EBUSY): a malformed frame is skipped, not a stuck ring
                s.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
            s.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            if tx_ring:
                tx_block = 1 << 16
                per_block = tx_block // frame_size
                self.tx_frame_nr = (tx_frames + per_block - 1) // per_block * per_block
                s.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack(
                    "=7I", tx_block, self.tx_frame_nr // per_block, frame_size, self.tx_frame_nr, 0, 0, 0))
            self.ring = mmap.mmap(s.fileno(), self.rx_size + self.tx_frame_nr * frame_size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            s.bind((name, ETH_P_ALL))
            if qdisc_bypass:
                s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            with contextlib.suppress(OSError):  # Linux >= 4.20
                s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            if fanout_group is not None:
                kind = PACKET_FANOUT_CBPF if fanout_key else PACKET_FANOUT_HASH
                mode = kind | PACKET_FANOUT_FLAG_DEFRAG
                arg = (fanout_group & 0xFFFF) | (mode << 16)  # > INT_MAX with the DEFRAG flag: pass as u32
                s.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", arg))
                if fanout_key:
                    self._set_fanout_prog(fanout_cbpf(fanout_key, fanout_members))
            s.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        # Python ring reader state (the C pump keeps its own)
        self._frame = 0
        self._block = 0
        self._left = 0
        self._next = 0
        self.kernel_packets = 0
        self.kernel_drops = 0

    def _set_fanout_prog(self, prog: bytes) -> None:
        """PACKET_FANOUT_DATA takes a struct sock_fprog {u16 len; struct sock_filter *filter}."""
        buf = ctypes.create_string_buffer(prog, len(prog))
        fprog = struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
        self.sock.setsockopt(SOL_PACKET, PACKET_FANOUT_DATA, fprog)

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, buf: bytearray | memoryview) -> int:
        """The next frame from the ring (copied into buf), 0 when the next slot (V2) or the current block
        (V3) is not ours yet."""
        if self.version == TPACKET_V2:
            return self._recv_v2(buf)
        ring, bs = self.ring, self.block_size
        while True:
            base = self._block * bs
            if self._left == 0:
                status, num, first = _BLOCK_HDR.unpack_from(ring, base + _BLOCK_STATUS_OFF)
                if not status & TP_STATUS_USER:
                    return 0
                if num == 0:
                    self._release(base)
                    continue
                self._left, self._next = num, base + first
            nxt, _sec, _nsec, snaplen, wirelen, _status, mac, _net = _PKT_HDR.unpack_from(ring, self._next)
            start = self._next + mac
            n = int(min(snaplen, len(buf)))
            buf[:n] = ring[start:start + n]
            self._left -= 1
            self._next += nxt
            if self._left == 0:
                self._release(base)
            if snaplen != wirelen:  # snapped (GSO or over the frame size): not a whole frame
                continue
            return n

    def _recv_v2(self, buf: bytearray | memoryview) -> int:
        """TPACKET_V2: the slot at the reader is ours when its tp_status has TP_STATUS_USER; copy the frame
        out, give the slot back (TP_STATUS_KERNEL), move on (wrapping at frame_nr)."""
        ring, fs = self.ring, self.frame_size
        while True:
            base = self._frame * fs
            status, wirelen, snaplen, mac, _net = _PKT2_HDR.unpack_from(ring, base)
            if not status & TP_STATUS_USER:
                return 0
            n = 0
            if mac + snaplen <= fs and snaplen == wirelen:  # whole, sane frames only
                n = int(min(snaplen, len(buf)))
                buf[:n] = ring[base + mac:base + mac + n]
            struct.pack_into("=I", ring, base, TP_STATUS_KERNEL)
            self._frame = (self._frame + 1) % self.frame_nr
            if n:
                return n

    def _release(self, base: int) -> None:
        struct.pack_into("=I", self.ring, base + _BLOCK_STATUS_OFF, TP_STATUS_KERNEL)
        self._block = (self._block + 1) % self.block_nr

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        if self.tx_frame_nr:  # a socket with a TX ring sends only from the ring
            return self._send_ring(frame)
        try:
            self.sock.send(frame)
        except (BlockingIOError, OSError):
            return False
        return True

    def _send_ring(self, frame: bytes | bytearray | memoryview) -> bool:
        """Copy the frame into the next TX ring slot, mark it SEND_REQUEST, kick the kernel.  The slots use
        the socket's TPACKET version: V2 tp_status at 0, tp_len/tp_snaplen at 4/8, data at 32; V3
        tp_snaplen/tp_len at 12/16, tp_status at 20, data at 48."""
        v2 = self.version == TPACKET_V2
        data_off, status_off = (TX_DATA_OFF_V2, 0) if v2 else (TX_DATA_OFF, 20)
        if len(frame) > self.tx_frame_size - data_off:
            return False
        slot = self.rx_size + self._tx_head * self.tx_frame_size
        status = struct.unpack_from("=I", self.ring, slot + status_off)[0]  # tp_status
        if status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING):
            return False
        self.ring[slot + data_off:slot + data_off + len(frame)] = bytes(frame)
        if v2:  # tp_len, tp_snaplen
            struct.pack_into("=II", self.ring, slot + 4, len(frame), len(frame))
        else:  # tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len
            struct.pack_into("=IIIII", self.ring, slot, 0, 0, 0, len(frame), len(frame))
        struct.pack_into("=I", self.ring, slot + status_off, TP_STATUS_SEND_REQUEST)
        self._tx_head = (self._tx_head + 1) % self.tx_frame_nr
        try:
            self.sock.send(b"")
        except (BlockingIOError, OSError):
            return False
        return True

    def kernel_stats(self) -> tuple[int, int]:
        """(packets, drops) the kernel counted for this socket (PACKET_STATISTICS; reading resets them, so
        they are accumulated here).  Drops = ring full: the pump did not keep up."""
        # struct tpacket_stats (V2) or tpacket_stats_v3 (V3: + tp_freeze_q_cnt): packets, drops first
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        packets, drops = struct.unpack_from("=II", raw)
        self.kernel_packets += packets
        self.kernel_drops += drops
        return self.kernel_packets, self.kernel_drops

    def close(self) -> None:
        ring = getattr(self, "ring", None)
        if ring is not None:
            with contextlib.suppress(BufferError):
                ring.close()
        self.sock.close()
