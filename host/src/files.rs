//! The file-system calls that differ between Unix and Windows, for the files
//! the host keeps itself (master key, token store, audit log).
//!
//! On Unix, files are created owner-only (mode 0600, directories 0700) and a
//! file others can read is reported. On Windows a new file takes the ACL of
//! its directory: keep the state directory in the service account's profile
//! (the default for `%LOCALAPPDATA%`), where only that account and the
//! administrators have access.

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

/// Options to create a file only its owner can read or write (Unix mode
/// 0600). Add `read`/`write`/`create*` as usual.
pub fn owner_only() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates `dir` and its missing parents; new directories are owner-only on
/// Unix (mode 0700).
pub fn create_owner_only_dir(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The permission bits (octal, like `644`) of a file others than its owner
/// may read or write, or `None` when only the owner can. Always `None` on
/// Windows, whose ACLs are not inspected.
pub fn shared_mode(meta: &Metadata) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| format!("{mode:o}"))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Fills `buf` from `file` at `offset`, without moving a cursor others rely
/// on (the audit log's file is opened for appending).
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], offset + done as u64) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Makes a rename in `dir` durable (fsync of the directory on Unix). Windows
/// has no directory fsync; there `MoveFileEx` with write-through is what
/// `std::fs::rename` already does as well as it can, so this does nothing.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
