using System.Net;
using System.Net.Sockets;
using MitmCache.Caching;
using MitmCache.Certificates;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Hosting;

namespace MitmCache.Cli;

/// <summary>
/// <c>mitmcache run</c>. Its flags are the definitions in <see cref="ProxyOptions"/>, read with the environment
/// and the config file by <see cref="SettingsLoader"/>. Not CommandLineParser: it would need every option
/// declared a second time as an attributed property, and it keeps the last of a repeated flag silently.
/// Nothing is created before the options (exit 2), the listen addresses (exit 2) and the data directory's
/// owner (exit 1) are checked.
/// </summary>
internal static class RunVerb
{
    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        if (args.Any(a => a is "--help" or "-h"))
        {
            Console.Out.Write(OptionDocs.Help(ProxyOptions.All));
            return 0;
        }

        var errors = new List<string>();
        var environment = Environment.GetEnvironmentVariables();
        var sockets = SystemdSockets.FromEnvironment(environment, errors);
        SystemdSockets.ClearEnvironment();
        var settings = SettingsLoader.Load(args, environment, errors, sockets is null ? null
            : s => s with { Listen = sockets.Proxy.EndPoint, MetricsListen = sockets.Metrics?.EndPoint ?? s.MetricsListen });
        if (settings is not null)
        {
            // A socket systemd passed is bound already: only addresses this process binds itself are checked.
            if (sockets is null)
            {
                CheckListen(settings.Listen, ProxyOptions.Listen, errors);
            }

            if (settings.MetricsListen is { } metrics && sockets?.Metrics is null)
            {
                CheckListen(metrics, ProxyOptions.MetricsListen, errors);
            }
        }

        if (Report(errors))
        {
            return 2;
        }

        DataDirectoryAccess.Check(settings!.Layout, errors);
        if (Report(errors))
        {
            return 1;
        }

        using var log = Logging.Create(settings);
        try
        {
            await using (var host = await ProxyHost.StartAsync(settings, log, sockets))
            {
                await host.WaitForShutdownAsync();
            }

            log.Information("MitmCache stopped");
            return 0;
        }
        catch (Exception ex) when (ex is CertificateAuthorityException or CacheUnavailableException or CacheLockedException)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
        catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException or SocketException)
        {
            // Taken between the check above and Kestrel's bind.
            Console.Error.WriteLine($"mitmcache: --listen {settings.Listen}: {ex.Message}");
            return 2;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"mitmcache: cannot use the data directory {settings.DataDirectory}: {ex.Message}");
            return 1;
        }
    }

    private static bool Report(List<string> errors)
    {
        foreach (var error in errors)
        {
            Console.Error.WriteLine($"mitmcache: {error}");
        }

        return errors.Count > 0;
    }

    /// <summary>Binds the address for a moment, as Kestrel will, so a busy port is an option error before the CA or the cache is touched.</summary>
    private static void CheckListen(IPEndPoint endpoint, OptionDefinition option, List<string> errors)
    {
        if (endpoint.Port == 0)
        {
            return;
        }

        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endpoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true; // Kestrel's [::] takes IPv4 too
            }

            socket.Bind(endpoint);
            socket.Listen();
        }
        catch (SocketException ex)
        {
            errors.Add($"{option.Flag} {endpoint}: " + ex.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => "the address is already in use (another process listens there)",
                SocketError.AddressNotAvailable => "no such address on this host",
                SocketError.AccessDenied => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)",
                _ => ex.Message,
            });
        }
    }
}
