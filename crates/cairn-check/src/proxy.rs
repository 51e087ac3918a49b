//! A fault-injecting TCP proxy on loopback (placeholder, being written).
