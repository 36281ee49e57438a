using System.Globalization;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>Command line of the benchmark program (run.sh passes the proxy dll).</summary>
internal sealed record BenchOptions
{
    /// <summary>The built <c>mitmcache.dll</c>, run as its own process (<c>dotnet mitmcache.dll run ...</c>).</summary>
    public required string ProxyDll { get; init; }

    /// <summary>Interleaved repetitions of each baseline/candidate pair.</summary>
    public int Repetitions { get; init; } = 3;

    /// <summary>Scenario numbers to run (1-10); empty runs all.</summary>
    public IReadOnlySet<int> Only { get; init; } = new HashSet<int>();

    /// <summary>Smaller sizes and counts, for trying the harness out (not for reporting).</summary>
    public bool Quick { get; init; }

    /// <summary>Set up, print how to reach the proxy and peers, and wait this long (for profiling by hand); no scenarios.</summary>
    public int? HoldSeconds { get; init; }

    /// <summary>With <c>--perf DIR</c>: profile the proxy during the measured parts that say so (<see cref="PerfProfile"/>), into DIR.</summary>
    public string? PerfDirectory { get; init; }

    /// <summary><c>--proxy-env NAME=VALUE</c> (repeatable): set in every proxy's environment, to A/B a runtime knob without a rebuild.</summary>
    public IReadOnlyDictionary<string, string> ProxyEnvironment { get; init; } = new Dictionary<string, string>();

    /// <summary>Where the markdown table is also written.</summary>
    public string? Output { get; init; }

    public bool Runs(int scenario) => Only.Count == 0 || Only.Contains(scenario);

    public static BenchOptions Parse(string[] args)
    {
        string? proxy = null, output = null, perf = null;
        var repetitions = 3;
        var only = new HashSet<int>();
        var proxyEnvironment = new Dictionary<string, string>();
        var quick = false;
        int? hold = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--proxy":
                    proxy = args[++i];
                    break;
                case "--reps":
                    repetitions = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--only":
                    foreach (var part in args[++i].Split(','))
                    {
                        only.Add(int.Parse(part, CultureInfo.InvariantCulture));
                    }

                    break;
                case "--quick":
                    quick = true;
                    break;
                case "--hold":
                    hold = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--proxy-env":
                    var pair = args[++i].Split('=', 2);
                    proxyEnvironment[pair[0]] = pair.Length == 2 ? pair[1] : throw new ArgumentException($"--proxy-env wants NAME=VALUE, got '{args[i]}'");
                    break;
                case "--perf":
                    perf = Path.GetFullPath(args[++i]);
                    break;
                case "--output":
                    output = args[++i];
                    break;
                default:
                    throw new ArgumentException($"unknown argument {args[i]}; usage: --proxy mitmcache.dll [--reps N] [--only 1,2,...] [--quick] [--output FILE] [--hold SECONDS] [--perf DIR] [--proxy-env NAME=VALUE]");
            }
        }

        if (proxy is null || !File.Exists(proxy))
        {
            throw new ArgumentException($"--proxy must name the built mitmcache.dll (got '{proxy}')");
        }

        return new BenchOptions { ProxyDll = Path.GetFullPath(proxy), Repetitions = repetitions, Only = only, Quick = quick, Output = output, HoldSeconds = hold, PerfDirectory = perf,
            ProxyEnvironment = proxyEnvironment };
    }
}
