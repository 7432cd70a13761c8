fn main() {
    // glibc loads NSS modules as libnss_<name>.so.2.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnss_oidc.so.2");
}
