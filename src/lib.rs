pub fn run<I: IntoIterator<Item = std::ffi::OsString>>(_args: I) -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
