using System.Text;

namespace MitmCache.Configuration;

/// <summary>How an option takes values.</summary>
public enum OptionArity
{
    /// <summary>One value; given twice in one source is an error.</summary>
    Single,
    /// <summary>A switch: <c>--name</c> alone, or true/false from the environment and the file.</summary>
    Switch,
    /// <summary>Repeatable, and comma-separated wherever it is given.</summary>
    List,
}

/// <summary>
/// One option of <c>mitmcache run</c>, defined once. Its name gives the flag (<c>--max-cache-size</c>), the
/// environment variable (<c>MITMCACHE_MAX_CACHE_SIZE</c>) and the config file key (<c>maxCacheSize</c>); its
/// parser validates every source the same way; its default and help make the documented table. The
/// definitions themselves are listed in <see cref="ProxyOptions"/>.
/// </summary>
public abstract class OptionDefinition
{
    public const string EnvironmentPrefix = "MITMCACHE_";

    private protected OptionDefinition(string name, OptionArity arity, string valueName, string? defaultText, string help)
    {
        Name = name;
        Arity = arity;
        ValueName = valueName;
        DefaultText = defaultText;
        Help = help;
    }

    /// <summary>Kebab case, as typed after <c>--</c>.</summary>
    public string Name { get; }

    public OptionArity Arity { get; }

    /// <summary>What a value looks like in help (<c>SIZE</c>, <c>ADDRESS:PORT</c>); empty for a switch.</summary>
    public string ValueName { get; }

    /// <summary>The default as an operator would type it, parsed like any given value; null for none.</summary>
    public string? DefaultText { get; }

    /// <summary>The default column of the documentation when it is not a value (a built-in list, "loopback only").</summary>
    public string? DocumentedDefault { get; init; }

    /// <summary>One sentence for help and the documented table (Markdown code spans allowed).</summary>
    public string Help { get; }

    /// <summary>The value is a credential: never repeated in an error message.</summary>
    public bool Secret { get; init; }

    /// <summary>False for <c>--config</c> itself, which only a flag or the environment can name.</summary>
    public bool InConfigFile { get; init; } = true;

    public string Flag => "--" + Name;

    public string EnvironmentVariable => EnvironmentPrefix + Name.ToUpperInvariant().Replace('-', '_');

    /// <summary>camelCase; the file also accepts the kebab-case name and any letter case.</summary>
    public string FileKey
    {
        get
        {
            var key = new StringBuilder(Name.Length);
            for (var i = 0; i < Name.Length; i++)
            {
                key.Append(Name[i] == '-' ? char.ToUpperInvariant(Name[++i]) : Name[i]);
            }

            return key.ToString();
        }
    }

    /// <summary>
    /// Parses the given values (or the default when <paramref name="given"/> is null) and stores the
    /// result in <paramref name="settings"/>; problems go to <paramref name="errors"/>.
    /// </summary>
    internal abstract ProxySettings Bind(ProxySettings settings, GivenValue? given, List<string> errors);

    /// <summary><c>--name 'value' (from SOURCE): problem</c>, without the value for a secret.</summary>
    private protected string Problem(string value, GivenValue? given, string problem)
    {
        var source = given is null || given.Source == Flag ? "" : $" (from {given.Source})";
        return Secret ? $"{Flag}{source}: {problem} (value not shown)" : $"{Flag} '{value}'{source}: {problem}";
    }
}

/// <summary>What one source said about one option: the raw text of each value, and where it came from.</summary>
public sealed record GivenValue(IReadOnlyList<string> Values, string Source);
