//! s1-actions
