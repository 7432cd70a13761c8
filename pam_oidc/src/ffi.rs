//! The only `unsafe` in the module: the libpam calls pam-bindings does not
//! wrap (`pam_putenv`, `pam_getenv`, `pam_syslog`), and the [`Pam`] adapter
//! over a real handle.

use crate::handle::{Pam, Prio};
use oidc_core::Secret;
use pam::constants::{PamFlag, PamResultCode, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_SILENT, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, Tty};
use pam::module::PamHandle;
use std::ffi::{c_char, c_int, CStr, CString};

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

pub struct RealPam<'a> {
    h: &'a mut PamHandle,
    silent: bool,
}

impl<'a> RealPam<'a> {
    pub fn new(h: &'a mut PamHandle, flags: PamFlag) -> Self {
        RealPam { h, silent: flags & PAM_SILENT != 0 }
    }
}

/// C string without interior NULs (they are replaced, never truncate silently).
fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// pam_set_data key of the claims verified in this transaction.
const VERIFIED: &str = "pam_oidc.verified";

impl Pam for RealPam<'_> {
    fn verified(&self) -> Option<oidc_core::SessionClaims> {
        // SAFETY: only `keep_verified` stores data under this key, always a
        // `SessionClaims`, so the type read back is the type stored.
        unsafe { self.h.get_data::<oidc_core::SessionClaims>(VERIFIED) }.ok().cloned()
    }

    fn keep_verified(&mut self, c: &oidc_core::SessionClaims) {
        let _ = self.h.set_data(VERIFIED, Box::new(c.clone()));
    }

    fn uid_of(&self, name: &str) -> Option<u32> {
        let cname = CString::new(name).ok()?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: `libc::passwd` is integers and raw pointers: all-zero bytes
        // (null pointers) is a valid value, used only as an out-parameter.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: cname is NUL-terminated; pw and result are valid out-pointers;
        // buf outlives the call and glibc writes only within `buf.len()` bytes.
        let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        (rc == 0 && !result.is_null()).then_some(pw.pw_uid)
    }

    fn user(&mut self) -> Result<String, PamResultCode> {
        self.h.get_user(None)
    }

    fn service(&self) -> String {
        match self.h.get_item::<Service>() {
            Ok(Some(s)) => s.0.to_string_lossy().into_owned(),
            _ => String::new(),
        }
    }

    fn rhost(&self) -> String {
        match self.h.get_item::<RHost>() {
            Ok(Some(s)) => s.0.to_string_lossy().into_owned(),
            _ => String::new(),
        }
    }

    fn tty(&self) -> String {
        match self.h.get_item::<Tty>() {
            Ok(Some(s)) => s.0.to_string_lossy().into_owned(),
            _ => String::new(),
        }
    }

    fn authtok(&self) -> Option<Secret> {
        let t = self.h.get_item::<AuthTok>().ok()??;
        let s = String::from_utf8(t.as_bytes().to_vec()).ok()?;
        Some(Secret::new(s))
    }

    fn prompt_secret(&mut self, msg: &str) -> Result<Option<Secret>, PamResultCode> {
        let conv = self.h.get_item::<Conv>()?.ok_or(PamResultCode::PAM_CONV_ERR)?;
        let reply = conv.send(PAM_PROMPT_ECHO_OFF, msg)?;
        Ok(reply.and_then(|b| b.as_str().ok().map(|s| Secret::new(s.to_string()))))
    }

    fn error(&mut self, msg: &str) {
        if self.silent {
            return;
        }
        if let Ok(Some(conv)) = self.h.get_item::<Conv>() {
            let _ = conv.send(PAM_ERROR_MSG, msg);
        }
    }

    fn info(&mut self, msg: &str) {
        if let Ok(Some(conv)) = self.h.get_item::<Conv>() {
            let _ = conv.send(PAM_TEXT_INFO, msg);
        }
    }

    fn putenv(&mut self, name: &str, value: &str) -> Result<(), PamResultCode> {
        // An empty value removes the variable (pam_putenv("NAME") deletes it);
        // libpam logs an error for deleting a missing one, so skip that.
        if value.is_empty() && self.getenv(name).is_none() {
            return Ok(());
        }
        let nv = if value.is_empty() { cstring(name) } else { cstring(&format!("{name}={value}")) };
        // SAFETY: `self.h` is the live handle PAM passed to this hook; `nv` is a
        // valid NUL-terminated string that libpam copies before returning.
        let rc = unsafe { pam_putenv(self.h, nv.as_ptr()) };
        if rc == PamResultCode::PAM_SUCCESS as c_int || (value.is_empty() && rc == PamResultCode::PAM_BAD_ITEM as c_int)
        {
            Ok(())
        } else {
            Err(PamResultCode::PAM_BUF_ERR)
        }
    }

    fn getenv(&self, name: &str) -> Option<String> {
        let n = cstring(name);
        // SAFETY: the handle is live for this hook. pam_getenv does not modify the
        // handle despite its non-const signature; it returns a pointer into
        // libpam's environment (or NULL), valid until the next pam_putenv, and we
        // copy it immediately.
        let p = unsafe { pam_getenv(std::ptr::from_ref(&*self.h).cast_mut(), n.as_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL pointers from pam_getenv point to NUL-terminated strings.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    fn log(&self, prio: Prio, msg: &str) {
        let p = match prio {
            Prio::Err => libc::LOG_ERR,
            Prio::Warning => libc::LOG_WARNING,
            Prio::Notice => libc::LOG_NOTICE,
            Prio::Info => libc::LOG_INFO,
        };
        let m = cstring(msg);
        // SAFETY: live handle; a constant "%s" format with one valid C string
        // argument, so no format-string injection. pam_syslog adds facility
        // LOG_AUTHPRIV and the "pam_oidc(service:type):" prefix.
        unsafe { pam_syslog(self.h, p, c"%s".as_ptr(), m.as_ptr()) };
    }
}
