using System.Text;

namespace SystemContainers.Engine.Runtime;

/// <summary>The "key value" lines sc-init reads on fd 3 (see src/native/sc-init.c).</summary>
public sealed class LaunchPlan
{
    private readonly StringBuilder _text = new();

    public LaunchPlan Add(string key, string value)
    {
        if (value.Contains('\n') || value.Contains('\0'))
            throw EngineException.Invalid("InvalidArgument", $"'{key}' must not contain a newline or NUL character");
        _text.Append(key).Append(' ').Append(value).Append('\n');
        return this;
    }

    public LaunchPlan Add(string key, long value) => Add(key, value.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>"cgroup" lines name v1 tasks files to write; "cgroup2" the directory to clone into.</summary>
    public LaunchPlan Add(Cgroups.CgroupJoin join)
    {
        AddAll("cgroup", join.TaskFiles);
        return join.Unified is null ? this : Add("cgroup2", join.Unified);
    }

    public LaunchPlan AddAll(string key, IEnumerable<string> values)
    {
        foreach (var v in values) Add(key, v);
        return this;
    }

    public override string ToString() => _text + "end\n";
}
