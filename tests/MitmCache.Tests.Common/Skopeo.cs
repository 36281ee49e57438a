namespace MitmCache.Tests.Common;

/// <summary>
/// skopeo 1.9 as a registry client. Trust comes from SSL_CERT_FILE, which for Go replaces
/// the system roots: fine for tests. Stored credentials are never used: --src-no-creds / --no-creds
/// unless <c>creds</c> ("user:password") is given. The signature policy is skipped.
/// </summary>
public static class Skopeo
{
    public const string Executable = "/usr/bin/skopeo";

    /// <summary><c>skopeo copy [--all] docker://REF oci:DIR:latest</c>.</summary>
    public static Task<ProcessResult> CopyToOciAsync(string imageRef, string ociDir, string? httpsProxy,
        string caBundlePath, string? creds, bool all, CancellationToken ct) =>
        CopyToOciAsync(imageRef, ociDir, httpsProxy, caBundlePath, creds, all, hostsFile: null, ct);

    /// <param name="hostsFile">When set, skopeo runs with this file as /etc/hosts (see <see cref="PrivateHosts"/>).</param>
    public static Task<ProcessResult> CopyToOciAsync(string imageRef, string ociDir, string? httpsProxy,
        string caBundlePath, string? creds, bool all, string? hostsFile, CancellationToken ct)
    {
        List<string> args = ["--insecure-policy", "copy"];
        if (all)
        {
            args.Add("--all");
        }

        args.Add(creds is null ? "--src-no-creds" : $"--src-creds={creds}");
        args.Add($"docker://{imageRef}");
        args.Add($"oci:{ociDir}:latest");
        return RunAsync(args, httpsProxy, caBundlePath, hostsFile, ct);
    }

    /// <summary><c>skopeo copy oci:DIR:latest docker://REF</c>: a push.</summary>
    public static Task<ProcessResult> CopyFromOciAsync(string ociDir, string imageRef, string? httpsProxy,
        string caBundlePath, string? creds, CancellationToken ct)
    {
        List<string> args = ["--insecure-policy", "copy", creds is null ? "--dest-no-creds" : $"--dest-creds={creds}", $"oci:{ociDir}:latest", $"docker://{imageRef}"];
        return RunAsync(args, httpsProxy, caBundlePath, hostsFile: null, ct);
    }

    /// <summary><c>skopeo inspect --raw docker://REF</c>: the manifest or index as served.</summary>
    public static Task<ProcessResult> InspectAsync(string imageRef, string? httpsProxy, string caBundlePath,
        string? creds, CancellationToken ct) =>
        InspectAsync(imageRef, httpsProxy, caBundlePath, creds, hostsFile: null, ct);

    public static Task<ProcessResult> InspectAsync(string imageRef, string? httpsProxy, string caBundlePath,
        string? creds, string? hostsFile, CancellationToken ct)
    {
        List<string> args = ["--insecure-policy", "inspect", "--raw", creds is null ? "--no-creds" : $"--creds={creds}", $"docker://{imageRef}"];
        return RunAsync(args, httpsProxy, caBundlePath, hostsFile, ct);
    }

    private static Task<ProcessResult> RunAsync(List<string> args, string? httpsProxy, string caBundlePath,
        string? hostsFile, CancellationToken ct)
    {
        var env = new Dictionary<string, string?> { ["SSL_CERT_FILE"] = caBundlePath };
        if (httpsProxy is not null)
        {
            env["HTTPS_PROXY"] = httpsProxy;
        }

        var (file, wrapped) = PrivateHosts.Wrap(hostsFile, Executable, args);
        return ProcessRunner.RunAsync(file, wrapped, env, ct: ct);
    }
}
