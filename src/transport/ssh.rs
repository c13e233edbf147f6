//! SSH transport over libssh2 (ssh2): one session per host, host keys checked against known_hosts.
