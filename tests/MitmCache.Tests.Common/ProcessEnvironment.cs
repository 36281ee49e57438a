using System.Diagnostics;

namespace MitmCache.Tests.Common;

/// <summary>
/// Environment hygiene for child processes: the CA and proxy variables a developer's
/// shell or CI may carry are dropped unless the caller sets them on purpose.
/// </summary>
internal static class ProcessEnvironment
{
    private static readonly string[] Scrubbed =
        ["SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"];

    public static ProcessStartInfo CreateStartInfo(string file, IEnumerable<string> args, IDictionary<string, string?>? env)
    {
        var info = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var name in Scrubbed)
        {
            info.Environment.Remove(name);
            info.Environment.Remove(name.ToLowerInvariant());
        }

        foreach (var (name, value) in env ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        return info;
    }
}
