//! Interface text in English and Simplified Chinese, and the formatting of
//! sizes, speeds, times and percentages for each. Every word the page shows
//! comes from here.
//!
//! What this module must not know: where the words are shown.

use serde::{Deserialize, Serialize};

/// The interface languages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The language for a BCP 47 tag such as the browser's `navigator.language`.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }
}

/// Every piece of interface text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    Tagline,
    SendFiles,
    ChooseFiles,
    ChooseFolder,
    PickerHint,
    DropHere,
    Upload,
    Total,
    CancelAll,
    PauseAll,
    ResumeAll,
    Pause,
    Resume,
    Paused,
    Cancel,
    RemoveFromServer,
    Retry,
    Waiting,
    Checking,
    Hashing,
    Uploading,
    Retrying,
    Done,
    Verifying,
    Mismatch,
    Verified,
    AlreadyUploaded,
    Failed,
    Settings,
    ChunkSize,
    ParallelUploads,
    ThumbnailSize,
    InstantLimit,
    StallAfter,
    Streams,
    StreamsFrom,
    Joining,
    Uploaded,
    NothingUploaded,
    Download,
    Delete,
    LoadMore,
    Interrupted,
    InterruptedHint,
    ResumeHere,
    ChooseAgain,
    Language,
    Left,
    Files,
    Activity,
    NoActivity,
    Transport,
    UploadedNotice,
    /// Before the server's version: "Connected to Ferry 1.2.3".
    Connected,
    /// Before the reason the server function failed.
    Unreachable,
    /// A file the server's rules refuse, before anything is sent.
    Refused,
    /// Before the largest size the server accepts.
    RuleTooLarge,
    /// Before the list of kinds of file the server accepts.
    RuleType,
    /// Before the most files the server takes at once.
    RuleTooMany,
    /// Before the room left in the person's share.
    RuleNoRoom,
}

/// The text of `msg` in `lang`.
pub fn t(lang: Lang, msg: Msg) -> &'static str {
    use Msg::*;
    match lang {
        Lang::En => match msg {
            Tagline => "Large files, resumable, verified.",
            SendFiles => "Send files",
            ChooseFiles => "Choose files",
            ChooseFolder => "Choose a folder",
            PickerHint => "Any number, any size. Interrupted uploads resume where they stopped.",
            DropHere => "or drop them here",
            Upload => "Upload",
            Total => "Total",
            CancelAll => "Cancel all",
            PauseAll => "Pause all",
            ResumeAll => "Resume all",
            Pause => "Pause",
            Resume => "Resume",
            Paused => "Paused",
            Cancel => "Cancel",
            RemoveFromServer => "Remove from server",
            Retry => "Retry",
            Waiting => "Waiting",
            Checking => "Checking",
            Hashing => "Hashing",
            Uploading => "Uploading",
            Retrying => "Retrying",
            Done => "Done",
            Verifying => "Verifying",
            Mismatch => "The server's copy is not this file: their SHA-256 differ. Retry sends it again",
            Verified => "verified",
            AlreadyUploaded => "Already uploaded",
            Failed => "Failed",
            Settings => "Settings",
            ChunkSize => "Chunk size (MiB)",
            ParallelUploads => "Files at once",
            ThumbnailSize => "Thumbnail size (px)",
            InstantLimit => "Instant upload: hash first files up to (MiB, 0 = off)",
            StallAfter => "Retry a request stuck for (s)",
            Streams => "Parts sent at once per large file",
            StreamsFrom => "Send files from (MiB) in parts",
            Joining => "Joining the parts on the server",
            Uploaded => "Uploaded files",
            NothingUploaded => "Nothing uploaded yet.",
            Download => "Download",
            Delete => "Delete",
            LoadMore => "Show more",
            Interrupted => "Interrupted uploads",
            InterruptedHint => "Choose or drop the same file again to resume.",
            ResumeHere => "Resume",
            ChooseAgain => "The browser did not give the file back: choose it again to resume.",
            Language => "Language",
            Left => "left",
            Files => "files",
            Activity => "Live activity",
            NoActivity => "Uploads from this browser, other tabs and scripts with your token appear here as they happen.",
            Transport => "Send bytes over",
            UploadedNotice => "files uploaded.",
            Connected => "Connected to Ferry",
            Unreachable => "The server cannot be reached:",
            Refused => "Not accepted",
            RuleTooLarge => "Too large: this server accepts files up to",
            RuleType => "Not accepted here: this server takes only",
            RuleTooMany => "Too many files at once: this server takes at most",
            RuleNoRoom => "Not enough room left in your share of the server:",
        },
        Lang::Zh => match msg {
            Tagline => "大文件，可续传，可校验。",
            SendFiles => "上传文件",
            ChooseFiles => "选择文件",
            ChooseFolder => "选择文件夹",
            PickerHint => "数量不限，大小不限。中断的上传会从断点继续。",
            DropHere => "或拖放到这里",
            Upload => "上传",
            Total => "总计",
            CancelAll => "全部取消",
            PauseAll => "全部暂停",
            ResumeAll => "全部继续",
            Pause => "暂停",
            Resume => "继续",
            Paused => "已暂停",
            Cancel => "取消",
            RemoveFromServer => "从服务器删除",
            Retry => "重试",
            Waiting => "等待中",
            Checking => "检查中",
            Hashing => "计算校验值",
            Uploading => "上传中",
            Retrying => "重试中",
            Done => "已完成",
            Verifying => "校验中",
            Mismatch => "服务器上的副本与此文件不一致（SHA-256 不同）。重试将重新上传",
            Verified => "已校验",
            AlreadyUploaded => "已上传过",
            Failed => "失败",
            Settings => "设置",
            ChunkSize => "分块大小 (MiB)",
            ParallelUploads => "同时上传的文件数",
            ThumbnailSize => "缩略图大小 (像素)",
            InstantLimit => "秒传：先校验的文件上限 (MiB，0 为关闭)",
            StallAfter => "请求无进展多久后重试 (秒)",
            Streams => "大文件同时发送的分段数",
            StreamsFrom => "分段发送的文件下限 (MiB)",
            Joining => "服务器正在合并分段",
            Uploaded => "已上传的文件",
            NothingUploaded => "还没有上传的文件。",
            Download => "下载",
            Delete => "删除",
            LoadMore => "显示更多",
            Interrupted => "中断的上传",
            InterruptedHint => "再次选择或拖放同一个文件即可继续。",
            ResumeHere => "继续",
            ChooseAgain => "浏览器没有交回这个文件：请再次选择它以继续。",
            Language => "语言",
            Left => "剩余",
            Files => "个文件",
            Activity => "实时动态",
            NoActivity => "来自本浏览器、其他标签页和使用你的令牌的脚本的上传会实时显示在这里。",
            Transport => "传输方式",
            UploadedNotice => "个文件已上传。",
            Connected => "已连接到 Ferry",
            Unreachable => "无法连接到服务器：",
            Refused => "不接受",
            RuleTooLarge => "文件过大：此服务器接受的文件最大为",
            RuleType => "不接受此类文件：此服务器只接受",
            RuleTooMany => "一次文件过多：此服务器一次最多接受",
            RuleNoRoom => "您在服务器上的空间不足：剩余",
        },
    }
}

/// How much of `all` is `done`, in whole percent; an empty whole is wholly
/// done.
pub fn percent(done: u64, all: u64) -> u64 {
    done.saturating_mul(100).checked_div(all).unwrap_or(100)
}

/// A file row's percentage: an empty file is 0 % until it is on the
/// server, and 100 % once it is (it has no bytes to count).
pub fn row_percent(sent: u64, size: u64, on_server: bool) -> u64 {
    if size == 0 {
        if on_server {
            100
        } else {
            0
        }
    } else {
        percent(sent, size)
    }
}

/// A byte count for people: `0 B`, `1.5 KB`, `2.3 GB` (decimal units).
pub fn format_size(_lang: Lang, bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.2} {}", UNITS[unit])
    } else if value < 100.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A speed for people: `12.3 MB/s`.
pub fn format_speed(lang: Lang, bytes_per_sec: f64) -> String {
    format!("{}/s", format_size(lang, bytes_per_sec.max(0.0) as u64))
}

/// A duration for people: `45 s`, `3 min 20 s`, `2 h 5 min`, or in Chinese
/// `45 秒`, `3 分 20 秒`, `2 小时 5 分`.
pub fn format_duration(lang: Lang, secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    match lang {
        Lang::En => {
            if h > 0 {
                format!("{h} h {m} min")
            } else if m > 0 {
                format!("{m} min {sec} s")
            } else {
                format!("{sec} s")
            }
        }
        Lang::Zh => {
            if h > 0 {
                format!("{h} 小时 {m} 分")
            } else if m > 0 {
                format!("{m} 分 {sec} 秒")
            } else {
                format!("{sec} 秒")
            }
        }
    }
}

/// "3 min 20 s left" / "剩余 3 分 20 秒".
pub fn format_time_left(lang: Lang, secs: f64) -> String {
    match lang {
        Lang::En => format!("{} {}", format_duration(lang, secs), t(lang, Msg::Left)),
        Lang::Zh => format!("{} {}", t(lang, Msg::Left), format_duration(lang, secs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_not_done_before_it_is() {
        assert_eq!(row_percent(0, 0, false), 0);
        assert_eq!(row_percent(0, 0, true), 100);
        assert_eq!(row_percent(5, 10, false), 50);
    }

    #[test]
    fn sizes_speeds_and_times() {
        assert_eq!(format_size(Lang::En, 0), "0 B");
        assert_eq!(format_size(Lang::En, 999), "999 B");
        assert_eq!(format_size(Lang::En, 1_500), "1.50 KB");
        assert_eq!(format_size(Lang::En, 25_300_000), "25.3 MB");
        assert_eq!(format_size(Lang::En, 4_000_000_000), "4.00 GB");
        assert_eq!(format_speed(Lang::En, 12_345_678.0), "12.3 MB/s");
        assert_eq!(format_time_left(Lang::En, 200.0), "3 min 20 s left");
        assert_eq!(format_time_left(Lang::Zh, 200.0), "剩余 3 分 20 秒");
        assert_eq!(format_duration(Lang::Zh, 7500.0), "2 小时 5 分");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 5), 100);
    }

    #[test]
    fn language_from_browser_tags() {
        assert_eq!(Lang::from_tag("zh-CN"), Lang::Zh);
        assert_eq!(Lang::from_tag("zh"), Lang::Zh);
        assert_eq!(Lang::from_tag("en-GB"), Lang::En);
        assert_eq!(Lang::from_tag("fr"), Lang::En);
    }
}
