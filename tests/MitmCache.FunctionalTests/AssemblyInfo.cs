// The functional tests drive Linux-only tools (containerd, namespaces, file modes).
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
