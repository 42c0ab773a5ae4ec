"""What every stage uses: errors, the subprocess boundary, logging, redaction, the work dir, the lock, hashes, versions, downloads and safe extraction."""
