//! Kerberos through MIT's GSS-API library (RFC 2744), loaded at run time: the initiator side
//! of a security context, and `wrap`/`unwrap`, which is all SASL GSSAPI (RFC 4752) needs.
//!
//! Loaded with `dlopen` (`libgssapi_krb5.so.2`, Debian's `libgssapi-krb5-2`, RHEL's
//! `krb5-libs`) rather than linked: the binaries then start on hosts without Kerberos and fail
//! only when a Kerberized cluster asks for it, with a message that says what to install.
//! hdfs-native, which Eddy's HDFS data path uses, loads the same library the same way.
//! No Kerberos protocol is written here: tickets, keytabs, caches and crypto are the library's.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CString};
use std::ptr;
use std::sync::OnceLock;

type OmUint32 = u32;
type GssName = *mut c_void;
type GssCtx = *mut c_void;
type GssCred = *mut c_void;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

#[repr(C)]
struct Oid {
    length: OmUint32,
    elements: *const c_void,
}

#[repr(C)]
struct KeyValue {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct KeyValueSet {
    count: OmUint32,
    elements: *const KeyValue,
}

/// `GSS_C_NT_HOSTBASED_SERVICE` (1.2.840.113554.1.2.1.4): `service@host`.
const HOSTBASED_SERVICE: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04";
/// `GSS_KRB5_NT_PRINCIPAL_NAME` (1.2.840.113554.1.2.2.1): `user/instance@REALM`.
const KRB5_PRINCIPAL_NAME: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";
/// The Kerberos 5 mechanism (1.2.840.113554.1.2.2).
const KRB5_MECHANISM: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02";

const GSS_C_MUTUAL_FLAG: OmUint32 = 2;
const GSS_C_CONF_FLAG: OmUint32 = 16;
const GSS_C_INTEG_FLAG: OmUint32 = 32;
const GSS_C_INITIATE: i32 = 1;
const GSS_C_INDEFINITE: OmUint32 = 0xffff_ffff;
const GSS_C_GSS_CODE: i32 = 1;
const GSS_C_MECH_CODE: i32 = 2;
const GSS_S_CONTINUE_NEEDED: OmUint32 = 1;
/// Calling and routine errors; the low 16 bits are supplementary information.
const GSS_S_ERROR_MASK: OmUint32 = 0xffff_0000;
/// Routine errors (`major >> 16`) that mean "get a ticket".
const GSS_S_NO_CRED: OmUint32 = 7;
const GSS_S_CREDENTIALS_EXPIRED: OmUint32 = 11;

type ImportName = unsafe extern "C" fn(*mut OmUint32, *mut Buffer, *const Oid, *mut GssName) -> OmUint32;
type ReleaseName = unsafe extern "C" fn(*mut OmUint32, *mut GssName) -> OmUint32;
type AcquireCredFrom = unsafe extern "C" fn(
    *mut OmUint32,
    GssName,
    OmUint32,
    *const c_void,
    i32,
    *const KeyValueSet,
    *mut GssCred,
    *mut *mut c_void,
    *mut OmUint32,
) -> OmUint32;
type ReleaseCred = unsafe extern "C" fn(*mut OmUint32, *mut GssCred) -> OmUint32;
type InitSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    GssCred,
    *mut GssCtx,
    GssName,
    *const Oid,
    OmUint32,
    OmUint32,
    *const c_void,
    *mut Buffer,
    *mut *const Oid,
    *mut Buffer,
    *mut OmUint32,
    *mut OmUint32,
) -> OmUint32;
type DeleteSecContext = unsafe extern "C" fn(*mut OmUint32, *mut GssCtx, *mut Buffer) -> OmUint32;
type Wrap = unsafe extern "C" fn(*mut OmUint32, GssCtx, i32, OmUint32, *mut Buffer, *mut i32, *mut Buffer) -> OmUint32;
type Unwrap = unsafe extern "C" fn(*mut OmUint32, GssCtx, *mut Buffer, *mut Buffer, *mut i32, *mut OmUint32) -> OmUint32;
type ReleaseBuffer = unsafe extern "C" fn(*mut OmUint32, *mut Buffer) -> OmUint32;
type InquireContext = unsafe extern "C" fn(
    *mut OmUint32,
    GssCtx,
    *mut GssName,
    *mut GssName,
    *mut OmUint32,
    *mut *const Oid,
    *mut OmUint32,
    *mut i32,
    *mut i32,
) -> OmUint32;
type DisplayName = unsafe extern "C" fn(*mut OmUint32, GssName, *mut Buffer, *mut *const Oid) -> OmUint32;
type DisplayStatus = unsafe extern "C" fn(*mut OmUint32, OmUint32, i32, *const Oid, *mut OmUint32, *mut Buffer) -> OmUint32;

/// The library's functions; the library stays loaded for the process's life.
struct Library {
    _library: libloading::Library,
    import_name: ImportName,
    release_name: ReleaseName,
    acquire_cred_from: AcquireCredFrom,
    release_cred: ReleaseCred,
    init_sec_context: InitSecContext,
    delete_sec_context: DeleteSecContext,
    wrap: Wrap,
    unwrap: Unwrap,
    release_buffer: ReleaseBuffer,
    inquire_context: InquireContext,
    display_name: DisplayName,
    display_status: DisplayStatus,
}

const LIBRARY: &str = "libgssapi_krb5.so.2";

fn library() -> Result<&'static Library, GssError> {
    static LOADED: OnceLock<Result<Library, String>> = OnceLock::new();
    LOADED.get_or_init(load).as_ref().map_err(|reason| GssError::Unavailable { reason: reason.clone() })
}

fn load() -> Result<Library, String> {
    let missing = |e: libloading::Error| {
        format!(
            "cannot load {LIBRARY} ({e}): install MIT Kerberos's GSS-API library (Debian and Ubuntu: libgssapi-krb5-2; RHEL: krb5-libs)"
        )
    };
    // SAFETY: loading MIT's GSS-API library runs its initialisers only, which have no
    // preconditions; every symbol is read with the signature RFC 2744 gives it.
    unsafe {
        let library = libloading::Library::new(LIBRARY).map_err(missing)?;
        macro_rules! symbol {
            ($name:literal) => {
                *library.get(concat!($name, "\0").as_bytes()).map_err(missing)?
            };
        }
        Ok(Library {
            import_name: symbol!("gss_import_name"),
            release_name: symbol!("gss_release_name"),
            acquire_cred_from: symbol!("gss_acquire_cred_from"),
            release_cred: symbol!("gss_release_cred"),
            init_sec_context: symbol!("gss_init_sec_context"),
            delete_sec_context: symbol!("gss_delete_sec_context"),
            wrap: symbol!("gss_wrap"),
            unwrap: symbol!("gss_unwrap"),
            release_buffer: symbol!("gss_release_buffer"),
            inquire_context: symbol!("gss_inquire_context"),
            display_name: symbol!("gss_display_name"),
            display_status: symbol!("gss_display_status"),
            _library: library,
        })
    }
}

/// A GSS-API failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GssError {
    /// The library could not be loaded.
    #[error("{reason}")]
    Unavailable {
        /// Why, and what to install.
        reason: String,
    },
    /// No usable credentials: no ticket, or an expired one.
    #[error("{message}")]
    NoCredentials {
        /// The library's words.
        message: String,
        /// Whether credentials were there but expired.
        expired: bool,
    },
    /// Any other failure, in the library's words.
    #[error("{message}")]
    Failed {
        /// The library's words (major and minor status).
        message: String,
    },
}

fn oid(bytes: &'static [u8]) -> Oid {
    Oid { length: bytes.len() as OmUint32, elements: bytes.as_ptr().cast() }
}

fn check(lib: &Library, major: OmUint32, minor: OmUint32) -> Result<(), GssError> {
    if major & GSS_S_ERROR_MASK == 0 {
        return Ok(());
    }
    let message = status_text(lib, major, minor);
    match major >> 16 & 0xff {
        GSS_S_NO_CRED => Err(GssError::NoCredentials { message, expired: false }),
        GSS_S_CREDENTIALS_EXPIRED => Err(GssError::NoCredentials { message, expired: true }),
        _ => Err(GssError::Failed { message }),
    }
}

/// The major status's text, then the mechanism's (Kerberos's own words, e.g. "Server not
/// found in Kerberos database").
fn status_text(lib: &Library, major: OmUint32, minor: OmUint32) -> String {
    let mut parts = Vec::new();
    for (value, kind) in [(major, GSS_C_GSS_CODE), (minor, GSS_C_MECH_CODE)] {
        if value == 0 {
            continue;
        }
        let mechanism = oid(KRB5_MECHANISM);
        let mut context = 0;
        // Bounded: a library that keeps saying "more" is not followed forever.
        for _ in 0..8 {
            let mut ignored = 0;
            let mut text = Buffer { length: 0, value: ptr::null_mut() };
            // SAFETY: every pointer is to a live local; the buffer is released below.
            let status = unsafe { (lib.display_status)(&mut ignored, value, kind, &mechanism, &mut context, &mut text) };
            if status & GSS_S_ERROR_MASK != 0 {
                break;
            }
            parts.push(String::from_utf8_lossy(buffer_bytes(&text)).into_owned());
            release(lib, &mut text);
            if context == 0 {
                break;
            }
        }
    }
    let text = parts.into_iter().filter(|p| !p.trim().is_empty()).collect::<Vec<_>>().join(": ");
    if text.is_empty() {
        format!("GSS-API status {major:#x}/{minor}")
    } else {
        text
    }
}

fn buffer_bytes(buffer: &Buffer) -> &[u8] {
    if buffer.value.is_null() || buffer.length == 0 {
        return &[];
    }
    // SAFETY: the library filled the buffer with `length` bytes at `value`.
    unsafe { std::slice::from_raw_parts(buffer.value.cast::<u8>(), buffer.length) }
}

fn release(lib: &Library, buffer: &mut Buffer) {
    let mut minor = 0;
    // SAFETY: the buffer was filled by the library (or is empty).
    unsafe { (lib.release_buffer)(&mut minor, buffer) };
}

/// Input bytes as the library reads them (it never writes through an input buffer).
fn input(bytes: &[u8]) -> Buffer {
    Buffer { length: bytes.len(), value: bytes.as_ptr().cast_mut().cast() }
}

fn output_bytes(lib: &Library, mut buffer: Buffer) -> Vec<u8> {
    let out = buffer_bytes(&buffer).to_vec();
    release(lib, &mut buffer);
    out
}

/// An imported name, released when dropped.
struct Name {
    lib: &'static Library,
    name: GssName,
}

impl Name {
    fn import(lib: &'static Library, text: &str, kind: &'static [u8]) -> Result<Self, GssError> {
        let kind = oid(kind);
        let mut minor = 0;
        let mut name = ptr::null_mut();
        let mut text = input(text.as_bytes());
        // SAFETY: the text buffer and OID outlive the call; the name is released on drop.
        let major = unsafe { (lib.import_name)(&mut minor, &mut text, &kind, &mut name) };
        check(lib, major, minor)?;
        Ok(Self { lib, name })
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: imported by the library, released once.
        unsafe { (self.lib.release_name)(&mut minor, &mut self.name) };
    }
}

/// Initiator credentials, released when dropped.
struct Credential {
    lib: &'static Library,
    cred: GssCred,
}

impl Drop for Credential {
    fn drop(&mut self) {
        if !self.cred.is_null() {
            let mut minor = 0;
            // SAFETY: acquired from the library, released once.
            unsafe { (self.lib.release_cred)(&mut minor, &mut self.cred) };
        }
    }
}

/// Where the initiator's Kerberos credentials come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Login {
    /// The default ticket cache (`kinit`, `KRB5CCNAME`).
    #[default]
    TicketCache,
    /// Tickets for `principal` obtained from `keytab` into a memory cache of this process
    /// (and obtained again by the library before they expire).
    Keytab {
        /// `user@REALM`.
        principal: String,
        /// The keytab's path.
        keytab: String,
    },
}

fn acquire(lib: &'static Library, login: &Login) -> Result<Credential, GssError> {
    let Login::Keytab { principal, keytab } = login else {
        // The default credentials: the library finds them in the default cache per call.
        return Ok(Credential { lib, cred: ptr::null_mut() });
    };
    let name = Name::import(lib, principal, KRB5_PRINCIPAL_NAME)?;
    let text = |s: String| CString::new(s).map_err(|_| GssError::Failed { message: "a NUL byte in the principal or keytab path".into() });
    let (ccache_key, keytab_key) = (text("ccache".into())?, text("client_keytab".into())?);
    let (ccache, keytab) = (text(format!("MEMORY:eddy-{principal}"))?, text(keytab.clone())?);
    let elements =
        [KeyValue { key: ccache_key.as_ptr(), value: ccache.as_ptr() }, KeyValue { key: keytab_key.as_ptr(), value: keytab.as_ptr() }];
    let store = KeyValueSet { count: elements.len() as OmUint32, elements: elements.as_ptr() };
    let mut minor = 0;
    let mut cred = ptr::null_mut();
    // SAFETY: the name, strings and store outlive the call; the credential is released on drop.
    let major = unsafe {
        (lib.acquire_cred_from)(
            &mut minor,
            name.name,
            GSS_C_INDEFINITE,
            ptr::null(),
            GSS_C_INITIATE,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    check(lib, major, minor)?;
    Ok(Credential { lib, cred })
}

/// A Kerberos security context being established with, then established with, one service.
pub struct Context {
    lib: &'static Library,
    ctx: GssCtx,
    target: Name,
    credential: Credential,
    established: bool,
}

// SAFETY: a context is used by one task at a time (&mut self for every call), and MIT's
// library does not tie a context to the thread that made it.
unsafe impl Send for Context {}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("established", &self.established).finish()
    }
}

impl Context {
    /// A context towards `service@host` (e.g. `nn@namenode.example.com`), with credentials
    /// from `login`.
    pub fn new(service: &str, host: &str, login: &Login) -> Result<Self, GssError> {
        let lib = library()?;
        let target = Name::import(lib, &format!("{service}@{host}"), HOSTBASED_SERVICE)?;
        let credential = acquire(lib, login)?;
        Ok(Self { lib, ctx: ptr::null_mut(), target, credential, established: false })
    }

    /// One step of establishing the context: the server's token in (none at first), ours out.
    pub fn step(&mut self, server_token: Option<&[u8]>) -> Result<Vec<u8>, GssError> {
        let mechanism = oid(KRB5_MECHANISM);
        let mut token_in = input(server_token.unwrap_or_default());
        let mut token_out = Buffer { length: 0, value: ptr::null_mut() };
        let mut minor = 0;
        // SAFETY: every pointer is to a live local or field; the output is released below.
        let major = unsafe {
            (self.lib.init_sec_context)(
                &mut minor,
                self.credential.cred,
                &mut self.ctx,
                self.target.name,
                &mechanism,
                GSS_C_MUTUAL_FLAG | GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG,
                0,
                ptr::null(),
                if server_token.is_some() { &mut token_in } else { ptr::null_mut() },
                ptr::null_mut(),
                &mut token_out,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let out = output_bytes(self.lib, token_out);
        check(self.lib, major, minor)?;
        self.established = major & GSS_S_CONTINUE_NEEDED == 0;
        Ok(out)
    }

    /// Whether the server has been authenticated and the context is ready.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The principal this side authenticated as (`alice@EXAMPLE.COM`), once established.
    pub fn principal(&self) -> Result<String, GssError> {
        let mut minor = 0;
        let mut source = ptr::null_mut();
        // SAFETY: the context is live; only the source name is asked for, released below.
        let major = unsafe {
            (self.lib.inquire_context)(
                &mut minor,
                self.ctx,
                &mut source,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check(self.lib, major, minor)?;
        let source = Name { lib: self.lib, name: source };
        let mut text = Buffer { length: 0, value: ptr::null_mut() };
        // SAFETY: the name is live; the buffer is released by output_bytes.
        let major = unsafe { (self.lib.display_name)(&mut minor, source.name, &mut text, ptr::null_mut()) };
        let text = output_bytes(self.lib, text);
        check(self.lib, major, minor)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// Wraps `data` (integrity protected; encrypted as well when `encrypt`).
    pub fn wrap(&mut self, data: &[u8], encrypt: bool) -> Result<Vec<u8>, GssError> {
        let mut data = input(data);
        let mut out = Buffer { length: 0, value: ptr::null_mut() };
        let mut minor = 0;
        let mut encrypted = 0;
        // SAFETY: the context is established; the output is released by output_bytes.
        let major = unsafe { (self.lib.wrap)(&mut minor, self.ctx, i32::from(encrypt), 0, &mut data, &mut encrypted, &mut out) };
        let out = output_bytes(self.lib, out);
        check(self.lib, major, minor)?;
        if encrypt && encrypted == 0 {
            // Privacy was agreed on; a message that is only signed must not leave.
            return Err(GssError::Failed { message: "the Kerberos context cannot encrypt, and privacy was agreed on".into() });
        }
        Ok(out)
    }

    /// Unwraps a token the server wrapped.
    pub fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        let mut token = input(token);
        let mut out = Buffer { length: 0, value: ptr::null_mut() };
        let mut minor = 0;
        // SAFETY: as for wrap.
        let major = unsafe { (self.lib.unwrap)(&mut minor, self.ctx, &mut token, &mut out, ptr::null_mut(), ptr::null_mut()) };
        let out = output_bytes(self.lib, out);
        check(self.lib, major, minor)?;
        Ok(out)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.ctx.is_null() {
            let mut minor = 0;
            // SAFETY: made by init_sec_context, deleted once; no output token is wanted.
            unsafe { (self.lib.delete_sec_context)(&mut minor, &mut self.ctx, ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_ticket_the_library_says_so() {
        // Where MIT's library is installed (hdfs-native needs it too): a keytab that does not
        // exist gives no ticket, which must read as a credentials failure, never as a crash.
        if library().is_err() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("eddy-gss-test-{}", std::process::id()));
        let login = Login::Keytab { principal: "nobody@EXAMPLE.INVALID".into(), keytab: dir.join("missing.keytab").display().to_string() };
        match Context::new("nn", "localhost", &login).and_then(|mut c| c.step(None)) {
            Err(GssError::NoCredentials { .. } | GssError::Failed { .. }) => {}
            other => panic!("expected a credentials failure, got {other:?}"),
        }
    }
}
