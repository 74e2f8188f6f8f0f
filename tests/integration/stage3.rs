//! Stage3 tarballs: unpack in every format inside the user namespace (owners, setuid bits,
//! hardlinks, xattrs kept; devices skipped), the cache (a second run does not unpack), and
//! corrupt, truncated and mis-digested tarballs.
