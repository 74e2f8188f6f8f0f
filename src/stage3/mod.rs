//! Stage3 tarballs: find (path, url), verify (sha512), unpack into the cache inside the user
//! namespace so files keep their owners; the result is a read-only `BuilderRoot` base.

pub mod flavor;
pub mod openpgp;
