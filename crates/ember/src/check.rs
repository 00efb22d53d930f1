//! `ember check config FILE...`, printing as `promtool check config` does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Checks each file; the exit code is 1 if any is invalid.
pub fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    for f in files {
        let name = f.display();
        let _ = writeln!(stdout.lock(), "Checking {name}");
        // scrape_config_files are part of the check, as in promtool.
        match ember_config::load_file(f).and_then(|c| c.all_scrape_configs().map(|_| ())) {
            Ok(()) => {
                let _ = writeln!(stdout.lock(), " SUCCESS: {name} is valid prometheus config file syntax");
            }
            Err(e) => {
                failed = true;
                let _ = writeln!(stderr.lock(), "  FAILED: {e}");
            }
        }
        let _ = writeln!(stdout.lock());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
