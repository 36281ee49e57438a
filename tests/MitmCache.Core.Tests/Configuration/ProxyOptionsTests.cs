using System.Reflection;
using MitmCache.Configuration;

namespace MitmCache.Core.Tests.Configuration;

/// <summary>The table of option definitions: complete, unambiguous, and documented from itself.</summary>
public sealed class ProxyOptionsTests
{
    [Fact]
    public void All_ListsEveryDefinedOption()
    {
        var defined = typeof(ProxyOptions).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType.IsAssignableTo(typeof(OptionDefinition)))
            .Select(f => (OptionDefinition)f.GetValue(null)!);

        Assert.Equal(defined.OrderBy(o => o.Name), ProxyOptions.All.OrderBy(o => o.Name)); // one left out would be ignored silently
    }

    [Fact]
    public void All_NamesVariablesAndKeysAreUnique()
    {
        Assert.Equal(ProxyOptions.All.Count, ProxyOptions.All.Select(o => o.Name).Distinct().Count());
        Assert.Equal(ProxyOptions.All.Count, ProxyOptions.All.Select(o => o.EnvironmentVariable).Distinct().Count());
        Assert.Equal(ProxyOptions.All.Count, ProxyOptions.All.Select(o => o.FileKey.ToLowerInvariant()).Distinct().Count());
        Assert.All(ProxyOptions.All, o => Assert.Matches("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", o.Name));
        Assert.All(ProxyOptions.All, o => Assert.False(string.IsNullOrWhiteSpace(o.Help)));
    }

    [Fact]
    public void Defaults_AreTheSettingsOfARunWithoutOptions()
    {
        var errors = new List<string>();

        var loaded = SettingsLoader.Load([], new System.Collections.Hashtable(), errors)!;
        var constructed = new ProxySettings { DataDirectory = loaded.DataDirectory };

        Assert.Empty(errors);
        foreach (var property in typeof(ProxySettings).GetProperties().Where(p => p.Name is not (nameof(ProxySettings.Layout) or nameof(ProxySettings.InstanceName)))) // a new name for each settings: InstanceName_Default_DiffersPerSettings
        {
            var (a, b) = (property.GetValue(loaded), property.GetValue(constructed));
            if (a is System.Collections.IEnumerable list && a is not string)
            {
                Assert.Equal(list.Cast<object>(), ((System.Collections.IEnumerable)b!).Cast<object>());
            }
            else
            {
                Assert.Equal(a, b);
            }
        }
    }

    [Fact]
    public void Markdown_OneRowPerOptionWithFlagVariableAndDefault()
    {
        var rows = OptionDocs.Markdown(ProxyOptions.All).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(ProxyOptions.All.Count + 2, rows.Length);
        Assert.Contains("| `--max-cache-size SIZE` | `MITMCACHE_MAX_CACHE_SIZE` | `20GiB` | size cap;", rows[2..].Single(r => r.Contains("--max-cache-size", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains("| `--intercept HOST` | `MITMCACHE_INTERCEPT` | built-in registry list |", OptionDocs.Markdown(ProxyOptions.All), StringComparison.Ordinal);
        Assert.Contains("(repeatable, comma-separated)", rows.Single(r => r.Contains("--allow-client", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    public void Definition_WhoseDefaultDoesNotParse_FailsAtOnce()
    {
        var error = Assert.Throws<ArgumentException>(() => Option.Size("cache", "lots", 1, "1B", "help", (s, _) => s));

        Assert.Contains("--cache: the default 'lots' does not parse", error.Message, StringComparison.Ordinal);
    }
}
