fn main() -> std::process::ExitCode {
    colibri_vault::run(std::env::args_os())
}
