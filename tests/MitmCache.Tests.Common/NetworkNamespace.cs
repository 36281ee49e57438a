using System.Globalization;
using System.Net;
using System.Security.Cryptography;

namespace MitmCache.Tests.Common;

/// <summary>
/// A private network namespace joined to this one by a veth pair on a /30 of 10.213.0.0/16: a server
/// started in it (<see cref="Wrap"/>) listens on <see cref="Address"/>, which this namespace reaches
/// through the veth. Packets are dropped with iptables inside that namespace only (<see cref="DropAsync"/>),
/// so an outage that hangs (no RST, no ICMP) touches nothing of the machine's own network: other tests
/// run beside us. Deleting the namespace deletes the veth pair and its rules. Needs root.
/// </summary>
public sealed class NetworkNamespace : IAsyncDisposable
{
    private const string Ip = "/usr/sbin/ip";

    private NetworkNamespace(string name, IPAddress hostAddress, IPAddress address)
    {
        Name = name;
        HostAddress = hostAddress;
        Address = address;
    }

    public string Name { get; }

    /// <summary>This namespace's end of the veth.</summary>
    public IPAddress HostAddress { get; }

    /// <summary>The private namespace's end of the veth: where its servers listen.</summary>
    public IPAddress Address { get; }

    public static async Task<NetworkNamespace> CreateAsync(CancellationToken ct = default)
    {
        for (var attempt = 0; ; attempt++)
        {
            var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
            var block = RandomNumberGenerator.GetInt32(0, 256 * 64) * 4; // a random /30 in 10.213.0.0/16
            var hostAddress = new IPAddress([10, 213, (byte)(block >> 8), (byte)((block & 0xFF) + 1)]);
            var address = new IPAddress([10, 213, (byte)(block >> 8), (byte)((block & 0xFF) + 2)]);
            var inUse = await RunAsync(Ip, ["-4", "addr", "show", "to", $"{hostAddress}/30"], ct);
            if (inUse.StdOut.Trim().Length > 0 && attempt < 5)
            {
                continue; // another test's namespace holds this /30
            }

            var network = new NetworkNamespace($"mitmcache-{id}", hostAddress, address);
            var hostEnd = $"mc{id}h";
            var privateEnd = $"mc{id}n";
            try
            {
                await network.MustAsync(Ip, "netns", "add", network.Name);
                await network.MustAsync(Ip, "link", "add", hostEnd, "type", "veth", "peer", "name", privateEnd, "netns", network.Name);
                await network.MustAsync(Ip, "addr", "add", $"{hostAddress}/30", "dev", hostEnd);
                await network.MustAsync(Ip, "link", "set", hostEnd, "up");
                await network.MustInsideAsync(Ip, "addr", "add", $"{address}/30", "dev", privateEnd);
                await network.MustInsideAsync(Ip, "link", "set", privateEnd, "up");
                await network.MustInsideAsync(Ip, "link", "set", "lo", "up");
                return network;
            }
            catch
            {
                await network.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>The command line that runs <paramref name="file"/> inside the namespace.</summary>
    public (string File, IReadOnlyList<string> Args) Wrap(string file, IEnumerable<string> args) => (Ip, ["netns", "exec", Name, file, .. args]);

    /// <summary>Drops every TCP packet to <paramref name="port"/> inside the namespace: connections hang, those open included.</summary>
    public Task DropAsync(int port) => MustInsideAsync("/usr/sbin/iptables", "-I", "INPUT", "-p", "tcp", "--dport", Port(port), "-j", "DROP");

    /// <summary>Removes the rule <see cref="DropAsync"/> added.</summary>
    public Task UndropAsync(int port) => MustInsideAsync("/usr/sbin/iptables", "-D", "INPUT", "-p", "tcp", "--dport", Port(port), "-j", "DROP");

    public async ValueTask DisposeAsync() => await RunAsync(Ip, ["netns", "delete", Name], CancellationToken.None);

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    private Task MustInsideAsync(string file, params string[] args)
    {
        var (wrapped, wrappedArgs) = Wrap(file, args);
        return MustAsync(wrapped, [.. wrappedArgs]);
    }

    private async Task MustAsync(string file, params string[] args)
    {
        var result = await RunAsync(file, args, CancellationToken.None);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed in {Name}: {result.StdErr}");
        }
    }

    private static Task<ProcessResult> RunAsync(string file, string[] args, CancellationToken ct) =>
        ProcessRunner.RunAsync(file, args, timeout: TimeSpan.FromSeconds(30), ct: ct);
}
