#!/usr/bin/env python3
"""Deterministic traffic for samples/record.sh.

Every scenario has a client role (run in the client namespace) and, where the far end is not just the
server kernel, a server role (run in the server namespace). Both roles are bounded in time: every blocking
call has a timeout, so a broken topology ends the scenario with an error instead of hanging the recording.

    traffic.py server SCENARIO --server ADDR [--ready FILE] [--timeout S]
    traffic.py client SCENARIO --server ADDR [--paused FILE --go FILE] [--timeout S]
"""

import argparse
import ftplib
import os
import socket
import struct
import sys
import time

TCP_PORT = 8000
TCP_CLOSED_PORT = 8001
UDP_PORT = 9000
UDP_DROPPED_PORT = 9001
UDP_CLOSED_PORT = 9999
SSH_PORT = 22
FTP_PORT = 21
FTP_ACTIVE_DATA_PORT = 20
TFTP_PORT = 69
REUSED_CLIENT_PORT = 40000
# tcp-port-clash: two inside addresses (record.sh adds the second) connect from this same source port.
CLASH_CLIENTS = ("10.1.2.3", "10.1.2.4")
CLASH_CLIENT_PORT = 40001
ICMP_ECHO_ID = 0x4242

# Payloads are fixed so that two recordings of one scenario differ only in ports, sequence numbers and times.
FTP_FILE_NAME = "sample.bin"
FTP_FILE = bytes((i * 7 + 3) % 256 for i in range(3000))
FTP_LISTING = (
    "-rw-r--r--    1 0        0            3000 Jan 01 00:00 sample.bin\r\n"
    "-rw-r--r--    1 0        0            1200 Jan 01 00:00 boot.img\r\n"
).encode()
TFTP_FILE_NAME = "boot.img"
TFTP_FILE = bytes((i * 13 + 5) % 256 for i in range(1200))
TFTP_BLOCK = 512
# Long enough for the delayed ACK of the server's FIN to go out first (40 ms seen, at most 200 ms).
FTP_DATA_CLOSE_DELAY = 0.25


def log(message):
    print(f"traffic: {message}", file=sys.stderr, flush=True)


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def signal_ready(path):
    if path:
        with open(path, "w") as ready:
            ready.write(f"{os.getpid()}\n")


def wait_for_file(path, bound):
    deadline = time.monotonic() + bound
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {bound} s")
        time.sleep(0.05)


def tcp_listener(address, port, timeout):
    listener = socket.socket(family_of(address), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(4)
    listener.settimeout(timeout)
    return listener


def tcp_connect(server, port, timeout, source_port=0, source_address=""):
    sock = socket.socket(family_of(server), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source_port:
        # The previous connection from this port ended with the server closing first, so the client's
        # socket is fully closed; SO_REUSEADDR only guards against a lingering local TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((source_address, source_port))
    sock.connect((server, port))
    return sock


def receive_exactly(sock, length):
    chunks = []
    while length > 0:
        chunk = sock.recv(length)
        if not chunk:
            raise ConnectionError("peer closed early")
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def wait_for_eof(sock):
    while sock.recv(4096):
        pass


# ---------------------------------------------------------------- TCP servers


def serve_echo(conn, close_delay=0.0):
    """Echo until the client closes, then close after close_delay (a pause lets the FIN be acked alone)."""
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
    except ConnectionResetError:
        log("server: connection reset by client")
    time.sleep(close_delay)
    conn.close()


def tcp_server(args, connections, handler):
    listener = tcp_listener(args.server, TCP_PORT, args.timeout)
    signal_ready(args.ready)
    for _ in range(connections):
        conn, peer = listener.accept()
        conn.settimeout(args.timeout)
        log(f"server: connection from {peer}")
        handler(conn)
    listener.close()


def server_close_first(conn):
    request = conn.recv(4096)
    conn.sendall(b"reply to " + request)
    time.sleep(0.2)
    conn.close()


# ---------------------------------------------------------------- FTP server (just what ftplib needs)


class FtpSession:
    def __init__(self, conn, server, close_after_client=False):
        self.conn = conn
        self.server = server
        self.close_after_client = close_after_client
        self.reader = conn.makefile("rb")
        self.active_target = None
        self.passive_listener = None

    def reply(self, text):
        self.conn.sendall(text.encode() + b"\r\n")

    def open_data(self):
        if self.passive_listener is not None:
            data, _ = self.passive_listener.accept()
            self.passive_listener.close()
            self.passive_listener = None
            return data
        data = socket.socket(family_of(self.server), socket.SOCK_STREAM)
        data.settimeout(self.conn.gettimeout())
        data.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        data.bind((self.server, FTP_ACTIVE_DATA_PORT))
        data.connect(self.active_target)
        self.active_target = None
        return data

    def send_data(self, payload, what):
        self.reply(f"150 Opening data connection for {what}")
        data = self.open_data()
        data.sendall(payload)
        data.close()
        self.reply("226 Transfer complete")

    def open_passive(self):
        listener = socket.socket(family_of(self.server), socket.SOCK_STREAM)
        listener.settimeout(self.conn.gettimeout())
        listener.bind((self.server, 0))
        listener.listen(1)
        self.passive_listener = listener
        return listener.getsockname()[1]

    def run(self):
        self.reply("220 pcap-conntrack sample FTP server")
        for raw in self.reader:
            line = raw.decode("ascii").rstrip("\r\n")
            command, _, argument = line.partition(" ")
            command = command.upper()
            log(f"ftp server: {line}")
            if command == "USER":
                self.reply("331 Please specify the password")
            elif command == "PASS":
                self.reply("230 Login successful")
            elif command == "SYST":
                self.reply("215 UNIX Type: L8")
            elif command == "TYPE":
                self.reply(f"200 Switching to type {argument}")
            elif command == "PWD":
                self.reply('257 "/" is the current directory')
            elif command == "PORT":
                numbers = [int(part) for part in argument.split(",")]
                host = ".".join(str(n) for n in numbers[:4])
                self.active_target = (host, numbers[4] * 256 + numbers[5])
                self.reply("200 PORT command successful")
            elif command == "EPRT":
                delimiter = argument[0]
                _, _, host, port, _ = argument.split(delimiter)
                self.active_target = (host, int(port))
                self.reply("200 EPRT command successful")
            elif command == "PASV":
                port = self.open_passive()
                host = self.server.replace(".", ",")
                self.reply(f"227 Entering Passive Mode ({host},{port // 256},{port % 256}).")
            elif command == "EPSV":
                port = self.open_passive()
                self.reply(f"229 Entering Extended Passive Mode (|||{port}|)")
            elif command in ("LIST", "NLST"):
                self.send_data(FTP_LISTING, "directory listing")
            elif command == "RETR":
                self.send_data(FTP_FILE, f"{argument} ({len(FTP_FILE)} bytes)")
            elif command == "QUIT":
                self.reply("221 Goodbye")
                if self.close_after_client:
                    # Both ends closing on 221 lets the two FINs cross inside the router, where the order
                    # its CPUs handled them cannot be told from one capture; closing on EOF orders them.
                    self.reader.read()
                break
            else:
                self.reply("502 Command not implemented")
        self.conn.close()


def ftp_server(args, close_after_client=False):
    listener = tcp_listener(args.server, FTP_PORT, args.timeout)
    signal_ready(args.ready)
    conn, peer = listener.accept()
    conn.settimeout(args.timeout)
    log(f"ftp server: control connection from {peer}")
    FtpSession(conn, args.server, close_after_client).run()
    listener.close()


class DelayedCloseSocket(socket.socket):
    """A data socket that waits close_delay s after its transfer ended before it closes."""

    def __init__(self, sock, close_delay):
        timeout = sock.gettimeout()
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.settimeout(timeout)
        self.close_delay = close_delay

    def __exit__(self, *exc_info):
        time.sleep(self.close_delay)
        super().__exit__(*exc_info)


class DelayedDataCloseFtp(ftplib.FTP):
    """ftplib.FTP closing each data connection a while after the server's FIN: our kernel then acks that
    FIN on its own before our FIN follows, so the router's entry passes CLOSE_WAIT (the seed's path)
    instead of going from FIN_WAIT straight to LAST_ACK."""

    def __init__(self, data_close_delay, **kwargs):
        super().__init__(**kwargs)
        self.data_close_delay = data_close_delay

    def ntransfercmd(self, cmd, rest=None):
        conn, size = super().ntransfercmd(cmd, rest)
        return DelayedCloseSocket(conn, self.data_close_delay), size


def ftp_client(args, passive_for_list, passive_for_retr, data_close_delay=0.0):
    if data_close_delay > 0:
        ftp = DelayedDataCloseFtp(data_close_delay, timeout=args.timeout)
    else:
        ftp = ftplib.FTP(timeout=args.timeout)
    ftp.connect(args.server, FTP_PORT)
    ftp.login("anonymous", "sample@example.org")
    ftp.set_pasv(passive_for_list)
    listing = []
    ftp.retrlines("LIST", listing.append)
    ftp.set_pasv(passive_for_retr)
    received = bytearray()
    ftp.retrbinary(f"RETR {FTP_FILE_NAME}", received.extend)
    if bytes(received) != FTP_FILE:
        raise ValueError(f"RETR returned {len(received)} bytes that differ from the served file")
    ftp.quit()
    log(f"ftp client: {len(listing)} listing lines, {len(received)} bytes retrieved")


# ---------------------------------------------------------------- TFTP (RFC 1350 read request, octet mode)


def tftp_server(args):
    sock = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    sock.bind((args.server, TFTP_PORT))
    sock.settimeout(args.timeout)
    signal_ready(args.ready)
    request, client = sock.recvfrom(1024)
    opcode = struct.unpack("!H", request[:2])[0]
    name = request[2:].split(b"\0")[0].decode()
    if opcode != 1 or name != TFTP_FILE_NAME:
        raise ValueError(f"unexpected TFTP request opcode {opcode} name {name!r}")
    # The transfer runs from a fresh port, as RFC 1350 asks: that is what needs the helper's expectation.
    transfer = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    transfer.bind((args.server, 0))
    transfer.settimeout(1.0)
    block = 1
    offset = 0
    while True:
        chunk = TFTP_FILE[offset : offset + TFTP_BLOCK]
        packet = struct.pack("!HH", 3, block) + chunk
        for _ in range(5):
            transfer.sendto(packet, client)
            try:
                ack, _ = transfer.recvfrom(1024)
            except socket.timeout:
                continue
            if struct.unpack("!HH", ack[:4]) == (4, block):
                break
        else:
            raise TimeoutError(f"no ACK for block {block}")
        if len(chunk) < TFTP_BLOCK:
            break
        block += 1
        offset += TFTP_BLOCK
    log(f"tftp server: sent {len(TFTP_FILE)} bytes in {block} blocks")


def tftp_client(args):
    sock = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    sock.settimeout(args.timeout)
    sock.sendto(struct.pack("!H", 1) + TFTP_FILE_NAME.encode() + b"\0octet\0", (args.server, TFTP_PORT))
    received = bytearray()
    expected_block = 1
    while True:
        packet, transfer = sock.recvfrom(1024)
        opcode, block = struct.unpack("!HH", packet[:4])
        if opcode != 3:
            raise ValueError(f"TFTP error or unexpected opcode {opcode}: {packet[4:]!r}")
        if block == expected_block:
            received.extend(packet[4:])
            expected_block += 1
        sock.sendto(struct.pack("!HH", 4, block), transfer)
        if block == expected_block - 1 and len(packet) - 4 < TFTP_BLOCK:
            break
    if bytes(received) != TFTP_FILE:
        raise ValueError("TFTP transfer differs from the served file")
    log(f"tftp client: received {len(received)} bytes")


# ---------------------------------------------------------------- UDP


def udp_echo_server(args, datagrams):
    sock = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    sock.bind((args.server, UDP_PORT))
    sock.settimeout(args.timeout)
    signal_ready(args.ready)
    for _ in range(datagrams):
        data, peer = sock.recvfrom(2048)
        sock.sendto(b"reply to " + data, peer)


def udp_exchange(args, count, interval, port, expect_reply):
    sock = socket.socket(family_of(args.server), socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    for sequence in range(count):
        if sequence:
            time.sleep(interval)
        # sendto on an unconnected socket: an ICMP error must not abort the remaining sends.
        sock.sendto(f"datagram {sequence}".encode(), (args.server, port))
        if expect_reply:
            sock.settimeout(args.timeout)
            data, _ = sock.recvfrom(2048)
            log(f"udp client: got {data!r}")


# ---------------------------------------------------------------- ICMP echo (raw sockets)


def internet_checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(args, count, interval, expect_reply):
    ipv6 = family_of(args.server) == socket.AF_INET6
    if ipv6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        echo_request, echo_reply = 128, 129
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        echo_request, echo_reply = 8, 0
    payload = bytes(range(56))
    for sequence in range(1, count + 1):
        if sequence > 1:
            time.sleep(interval)
        header = struct.pack("!BBHHH", echo_request, 0, 0, ICMP_ECHO_ID, sequence)
        # The kernel fills in the ICMPv6 checksum (it needs the pseudo-header); ICMPv4 is ours to compute.
        checksum = 0 if ipv6 else internet_checksum(header + payload)
        request = struct.pack("!BBHHH", echo_request, 0, checksum, ICMP_ECHO_ID, sequence) + payload
        sock.sendto(request, (args.server, 0))
        if not expect_reply:
            continue
        deadline = time.monotonic() + args.timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            packet, _ = sock.recvfrom(2048)
            icmp = packet if ipv6 else packet[(packet[0] & 0x0F) * 4 :]
            kind, _, _, echo_id, echo_sequence = struct.unpack("!BBHHH", icmp[:8])
            if kind == echo_reply and echo_id == ICMP_ECHO_ID and echo_sequence == sequence:
                log(f"ping: reply {sequence}")
                break


# ---------------------------------------------------------------- TCP clients


def tcp_client_close(args):
    sock = tcp_connect(args.server, TCP_PORT, args.timeout)
    for message in (b"hello\n", b"second line\n", b"bye\n"):
        sock.sendall(message)
        receive_exactly(sock, len(message))
        time.sleep(0.2)
    sock.close()


def tcp_server_close(args):
    sock = tcp_connect(args.server, TCP_PORT, args.timeout)
    sock.sendall(b"please close\n")
    wait_for_eof(sock)
    # Pause before closing so our ACK of the server's FIN goes out alone (conntrack CLOSE_WAIT) before our FIN.
    time.sleep(0.5)
    sock.close()


def tcp_refused(args):
    try:
        tcp_connect(args.server, TCP_CLOSED_PORT, args.timeout)
    except ConnectionRefusedError:
        log("tcp client: connection refused, as planned")
        return
    raise RuntimeError("connection to the closed port was accepted")


def tcp_reset_midstream(args):
    sock = tcp_connect(args.server, TCP_PORT, args.timeout)
    for message in (b"first\n", b"second\n"):
        sock.sendall(message)
        receive_exactly(sock, len(message))
        time.sleep(0.2)
    # Linger with zero timeout: close() aborts with an RST instead of a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def tcp_midstream_pickup(args):
    sock = tcp_connect(args.server, TCP_PORT, args.timeout)
    for index in range(3):
        message = f"before flush {index}\n".encode()
        sock.sendall(message)
        receive_exactly(sock, len(message))
        time.sleep(0.2)
    # Let delayed ACKs go out, then tell record.sh the connection is quiet: it flushes the router's table and
    # starts the captures, so the recording begins in the middle of this connection.
    time.sleep(0.5)
    signal_ready(args.paused)
    wait_for_file(args.go, args.timeout)
    for index in range(4):
        message = f"after flush {index}\n".encode()
        sock.sendall(message)
        receive_exactly(sock, len(message))
        time.sleep(0.3)
    sock.close()


def tcp_port_reuse(args):
    # 1st and 2nd connection: the 2nd SYN arrives while the router's entry is in TIME_WAIT.
    # 3rd connection: after the router's TIME_WAIT timeout ran out.
    for index, pause_before in enumerate((0.0, 0.3, args.reuse_pause)):
        time.sleep(pause_before)
        sock = tcp_connect(args.server, TCP_PORT, args.timeout, source_port=REUSED_CLIENT_PORT)
        sock.sendall(f"connection {index}\n".encode())
        wait_for_eof(sock)
        sock.close()
        log(f"tcp client: connection {index} from port {REUSED_CLIENT_PORT} done")


def tcp_port_clash(args):
    # Both connections are open at once, so the router's MASQUERADE finds the first one's mapping taken
    # when the second SYN (same source port, other inside address) leaves by the same outside address.
    first = tcp_connect(args.server, TCP_PORT, args.timeout, CLASH_CLIENT_PORT, CLASH_CLIENTS[0])
    time.sleep(0.2)
    second = tcp_connect(args.server, TCP_PORT, args.timeout, CLASH_CLIENT_PORT, CLASH_CLIENTS[1])
    # The server echoes one connection at a time: finish the first before the second talks.
    for sock, message in ((first, b"from the first client\n"), (second, b"from the second client\n")):
        sock.sendall(message)
        receive_exactly(sock, len(message))
        time.sleep(0.2)
        sock.close()
    log(f"tcp client: two connections from port {CLASH_CLIENT_PORT} done")


def ssh_syn_unanswered(args):
    try:
        tcp_connect(args.server, SSH_PORT, args.connect_timeout)
    except socket.timeout:
        log("tcp client: SYN unanswered, as planned")
        return
    raise RuntimeError("connection to the dropped port was answered")


# ---------------------------------------------------------------- dispatch

SERVERS = {
    "tcp-client-close": lambda a: tcp_server(a, 1, serve_echo),
    "tcp-server-close": lambda a: tcp_server(a, 1, server_close_first),
    "tcp-reset-midstream": lambda a: tcp_server(a, 1, serve_echo),
    "tcp-midstream-pickup": lambda a: tcp_server(a, 1, serve_echo),
    "tcp-port-reuse-after-timewait": lambda a: tcp_server(a, 3, server_close_first),
    "tcp-port-clash": lambda a: tcp_server(a, 2, serve_echo),
    "udp-request-response": lambda a: udp_echo_server(a, 1),
    "udp-stream-assured": lambda a: udp_echo_server(a, 10),
    "ftp-active": ftp_server,
    "ftp-active-close-wait": lambda a: ftp_server(a, close_after_client=True),
    "ftp-passive": ftp_server,
    "ftp-ipv6-eprt-epsv": ftp_server,
    "tftp-read": tftp_server,
}

CLIENTS = {
    "ssh-syn-unanswered": ssh_syn_unanswered,
    "ping": lambda a: ping(a, 3, 0.5, True),
    "ping-ipv6": lambda a: ping(a, 3, 0.5, True),
    "ping-unanswered": lambda a: ping(a, 3, 0.5, False),
    "tcp-client-close": tcp_client_close,
    "tcp-server-close": tcp_server_close,
    "tcp-refused": tcp_refused,
    "tcp-reset-midstream": tcp_reset_midstream,
    "tcp-midstream-pickup": tcp_midstream_pickup,
    "tcp-port-reuse-after-timewait": tcp_port_reuse,
    "tcp-port-clash": tcp_port_clash,
    "udp-request-response": lambda a: udp_exchange(a, 1, 0, UDP_PORT, True),
    # 0.45 s, not 0.4: the kernel assures a UDP flow once more than 2*HZ jiffies passed since its first
    # packet, so a datagram 2.000-2.004 s in (0.4 s x 5 plus drift) is assured or not by the tick's phase.
    "udp-stream-assured": lambda a: udp_exchange(a, 10, 0.45, UDP_PORT, True),
    "udp-unanswered": lambda a: udp_exchange(a, 3, 1.0, UDP_DROPPED_PORT, False),
    "icmp-port-unreachable": lambda a: udp_exchange(a, 2, 1.0, UDP_CLOSED_PORT, False),
    "ftp-active": lambda a: ftp_client(a, False, False),
    "ftp-active-close-wait": lambda a: ftp_client(a, False, False, FTP_DATA_CLOSE_DELAY),
    "ftp-passive": lambda a: ftp_client(a, True, True),
    "ftp-ipv6-eprt-epsv": lambda a: ftp_client(a, False, True),
    "tftp-read": tftp_client,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("scenario")
    parser.add_argument("--server", required=True, help="server address")
    parser.add_argument("--ready", help="server: file to create once listening")
    parser.add_argument("--paused", help="tcp-midstream-pickup client: file to create when quiet")
    parser.add_argument("--go", help="tcp-midstream-pickup client: file to wait for before resuming")
    parser.add_argument("--timeout", type=float, default=20.0, help="bound for every blocking call")
    parser.add_argument("--connect-timeout", type=float, default=4.0, help="ssh-syn-unanswered: give up after")
    parser.add_argument("--reuse-pause", type=float, default=3.5, help="port reuse: pause before the 3rd try")
    args = parser.parse_args()
    table = SERVERS if args.role == "server" else CLIENTS
    if args.scenario not in table:
        parser.error(f"no {args.role} role for scenario {args.scenario}")
    table[args.scenario](args)


if __name__ == "__main__":
    main()
