//! Interrupted runs leave `.bootstrapctl.*` temp files; the next run on the host removes them.
